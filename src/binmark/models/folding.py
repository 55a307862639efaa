"""Fold patterns: how a block declares the algebra of its forward, so that it can be packed.

``binmark.deploy.pack`` folds a BatchNorm into the binary convolution next to it. Which BN, and on
which side, depends on the order of the block's forward, so the block says so: it sets the class
attribute ``fold_pattern`` to one of the names below. The packer looks at that name only (it
imports no model family); a block without the attribute is not folded (its binary convs are still
bit-packed, with a separate BN). A subclass inherits the declaration: one whose forward differs
must set its own, or ``fold_pattern = None``.

================  ====================================================================================
pattern           forward, and the child attributes the packer reads and rewrites
================  ====================================================================================
``pre_act``       ``conv(act(bn(x)))``, then anything (``PreActConv``). ``bn``: the
                  ``nn.BatchNorm2d`` whose output only ``act`` reads; ``act``: must be ``nn.Identity``
                  (the sign must see BN's signed output); ``conv``: a binary ``QuantConv2d``. ``bn``
                  folds into ``conv``'s input thresholds and becomes ``nn.Identity``.
``conv_bn``       ``bn(conv(x))``, then anything (``BinaryConvBN``, ``BinaryUnit``). ``conv``: a binary
                  ``QuantConv2d`` whose output only ``bn`` reads; ``bn``: ``nn.BatchNorm2d``. ``bn``
                  folds into ``conv``'s output scale and bias and becomes ``nn.Identity``.
``branches_bn``   ``bn(torch.cat([c(x) for c in convs], dim=1))``, then anything (``MultiScaleUnit``).
                  ``convs``: an ``nn.ModuleList`` of binary ``QuantConv2d``, in concatenation order;
                  ``bn``: ``nn.BatchNorm2d`` over the concatenation. Each conv takes its slice of
                  ``bn`` as in ``conv_bn``.
================  ====================================================================================

Every rule is exact algebra and applies only when the attributes are what the table says (a
BatchNorm, binary convs, an identity activation); otherwise the block is left as it is, which is
how the real-valued and k-bit variants of the same class pass through. Declaring a name that is
not in :data:`FOLD_PATTERNS` is an error when the model is packed (naming the class and the known
patterns).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["FoldPattern", "FOLD_PATTERNS", "FOLD_ATTR"]

#: The names a block's ``fold_pattern`` may take (see the module docstring).
FoldPattern = Literal["pre_act", "conv_bn", "branches_bn"]

#: The known pattern names, in the order of the module docstring's table.
FOLD_PATTERNS: tuple[str, ...] = get_args(FoldPattern)

#: The class attribute a block declares its pattern in.
FOLD_ATTR = "fold_pattern"
