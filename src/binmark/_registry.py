"""A small name → object table, one per thing a user names in a config.

Every registry in binmark (quantizer aliases, quant presets, models, hourglass blocks, …) is a
:class:`Registry`: a plain dict filled by a decorator that refuses duplicate names, and a
:meth:`Registry.get` whose error lists the valid names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → object table with a registering decorator.

    Args:
        kind: what the entries are, used in error messages ("model", "quant preset", …).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that stores its target under ``name``.

        Raises:
            ValueError: ``name`` is already registered.
        """

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            ValueError: unknown name; the message lists the valid ones.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
