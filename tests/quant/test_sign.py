"""Sign and its straight-through estimators: values and gradients against the docstring formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from binmark.quant import (
    STES,
    ApproxSign,
    SignSTE,
    SwishSign,
    approx_sign,
    get_ste,
    sign,
    sign_ste,
    swish_sign,
)
from tests.conftest import real_values_with_zeros


def _grad_of(fn, x: torch.Tensor) -> np.ndarray:
    x = x.clone().requires_grad_(True)
    fn(x).sum().backward()
    return x.grad.numpy()


# NumPy transcriptions of the formulas in binmark/quant/sign.py's docstring.
def _np_clipped(x: np.ndarray, clip: float) -> np.ndarray:
    return (np.abs(x) <= clip).astype(x.dtype)


def _np_approx(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x), 0.0)


def _np_swish(x: np.ndarray, beta: float) -> np.ndarray:
    return beta * (2 - beta * x * np.tanh(beta * x / 2)) / (1 + np.cosh(beta * x))


class TestForward:
    @pytest.mark.parametrize("fn", [sign, sign_ste, approx_sign, swish_sign])
    def test_values_are_plus_minus_one_with_sign_zero_positive(self, fn) -> None:
        x = real_values_with_zeros()
        y = fn(x)
        expected = np.where(x.numpy() >= 0, 1.0, -1.0)
        np.testing.assert_array_equal(y.numpy(), expected)
        assert y.dtype == x.dtype
        assert fn(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]

    def test_negative_zero_is_plus_one(self) -> None:
        assert sign(torch.tensor([-0.0])).item() == 1.0


class TestGradients:
    @pytest.mark.parametrize("clip", [1.0, 0.5, 2.0])
    def test_clipped(self, clip: float) -> None:
        x = real_values_with_zeros(clip=clip)
        np.testing.assert_allclose(
            _grad_of(lambda t: sign_ste(t, clip), x), _np_clipped(x.numpy(), clip)
        )

    def test_sign_is_clipped_at_one_inclusive(self) -> None:
        x = torch.tensor([-1.0, -0.999, 0.0, 1.0, 1.0001], dtype=torch.float64)
        assert _grad_of(sign, x).tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]

    def test_approx(self) -> None:
        x = real_values_with_zeros()
        np.testing.assert_allclose(_grad_of(approx_sign, x), _np_approx(x.numpy()))

    @pytest.mark.parametrize("beta", [5.0, 1.0, 10.0])
    def test_swish(self, beta: float) -> None:
        x = real_values_with_zeros()
        np.testing.assert_allclose(
            _grad_of(lambda t: swish_sign(t, beta), x), _np_swish(x.numpy(), beta), rtol=1e-12
        )

    def test_swish_is_finite_far_from_zero(self) -> None:
        x = torch.tensor([-1e30, -100.0, 100.0, 1e30])
        g = _grad_of(swish_sign, x)
        assert np.all(np.isfinite(g)) and np.all(np.abs(g) < 1e-20)

    def test_gradient_scales_the_incoming_gradient(self) -> None:
        x = torch.tensor([0.2, -0.3], requires_grad=True)
        (sign(x) * torch.tensor([3.0, -2.0])).sum().backward()
        assert x.grad.tolist() == [3.0, -2.0]


class TestModules:
    @pytest.mark.parametrize(
        ("name", "cls"), [("clipped", SignSTE), ("approx", ApproxSign), ("swish", SwishSign)]
    )
    def test_aliases_resolve(self, name: str, cls: type) -> None:
        module = get_ste(name)
        assert isinstance(module, cls) and module.bits == 1
        x = real_values_with_zeros()
        np.testing.assert_array_equal(module(x).numpy(), sign(x).numpy())

    def test_get_passes_modules_through_and_takes_kwargs(self) -> None:
        m = SwishSign(beta=3.0)
        assert get_ste(m) is m
        assert get_ste("clipped", clip=0.5).clip == 0.5

    def test_unknown_alias_lists_valid_ones(self) -> None:
        with pytest.raises(ValueError, match="clipped, approx, swish"):
            get_ste("ste_sign_typo")

    def test_registry_has_the_three_variants(self) -> None:
        assert STES.names() == ["clipped", "approx", "swish"]

    @pytest.mark.parametrize("bad", [0.0, -1.0])
    def test_bad_hyper_parameters(self, bad: float) -> None:
        with pytest.raises(ValueError, match="clip"):
            SignSTE(bad)
        with pytest.raises(ValueError, match="beta"):
            SwishSign(bad)
