"""HardNet (Mishchuk et al., NIPS 2017): a descriptor network for 32x32 grayscale patches
(E4b), in its S-Conv form (the authors' ``HardNet.py``) and its F-Conv form (Kayhan & van
Gemert's ``HardNet_fconv.py``, Exp4 patch matching).

Layout of the authors' ``features`` Sequential, so their checkpoints load: the patch is
normalised by its own mean and standard deviation (unbiased, plus 1e-7, both constants in the
backward pass, as the original); six 3x3 convs 1->32, 32->32, 32->64 /2, 64->64, 64->128 /2,
128->128, each without bias and followed by an affine-free BatchNorm and ReLU; dropout 0.3
(``train=True`` only, rng collection "dropout"); an unpadded 8x8 conv 128->``num_classes``
without bias (``head``) and an affine-free BatchNorm (``head_bn``). The head's map is then
flattened in PyTorch's (C, H, W) order and L2-normalised (``x / sqrt(sum x^2 + 1e-10)``), as
both official forwards do (``view(N, -1)``), so a descriptor here equals the PyTorch one
element for element.

``padding`` and ``fill`` switch the six 3x3 convs: "same" pads 1 (the original), "full" pads
2 (F-Conv), "valid" pads 0; the 8x8 head stays unpadded in all three. At 32x32 the head's map
is 1x1 with same padding (a 128-d descriptor) and 7x7 with full padding (the F-Conv
descriptor: 7*7*128 = 6272-d). "valid" needs inputs of at least 51x51 (smaller ones raise a
ValueError from the 8x8 conv); larger inputs give longer descriptors in every mode.

Initialisation as the authors' ``weights_init``: every conv kernel orthogonal with gain 0.6
(the convs have no bias); the BatchNorms have no parameters.

Module names: ``conv1..conv6``, ``bn1..bn6``, ``dropout``, ``head``, ``head_bn``
(``torch_feature_indices`` gives their index in the original ``features``). The S-Conv and
F-Conv networks have the same parameter shapes, so one checkpoint loads into either; it loads
into another head width with ``load_torch(..., exclude=("head", "head_bn"))``.
"""
from __future__ import annotations


import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from jaxeq import _checks
from jaxeq.models._common import Model
from jaxeq.nn import BatchNorm, Conv

# (output channels, stride) of the six 3x3 convs.
CONVS = ((32, 1), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1))
INPUT_EPS = 1e-7   # added to the patch std (the original's input_norm)
L2_EPS = 1e-10     # added to the squared norm (the original's L2Norm)
# The authors' weights_init: torch.nn.init.orthogonal(weight, gain=0.6) for every conv. Torch
# makes the (out, in*kh*kw) matrix orthonormal along its shorter side; here the (kh*kw*in, out)
# matrix, its transpose up to a row order, gets the same property.
orthogonal_init = nn.initializers.orthogonal(scale=0.6, column_axis=-1)


def torch_feature_indices() -> dict[str, int]:
    """flax module name -> index in the original ``features`` Sequential
    (conv, BatchNorm, ReLU per 3x3 layer; then Dropout, the 8x8 conv and its BatchNorm)."""
    out = {}
    for i in range(len(CONVS)):
        out[f"conv{i + 1}"] = 3 * i
        out[f"bn{i + 1}"] = 3 * i + 1
    n = 3 * len(CONVS)
    out.update(dropout=n, head=n + 1, head_bn=n + 2)
    return out


class AffineFreeBatchNorm(BatchNorm):
    """:class:`jaxeq.nn.BatchNorm` without ``scale`` and ``bias`` (PyTorch ``affine=False``).

    The normalisation, running statistics and ``axis_name`` handling are BatchNorm's own; only
    the two affine parameters are replaced by the constants 1 and 0 instead of being created.
    """

    def param(self, name, init_fn, *init_args, **init_kwargs):
        if name in ("scale", "bias"):
            shape = init_args[0]
            return jnp.ones(shape, self.param_dtype) if name == "scale" else \
                jnp.zeros(shape, self.param_dtype)
        return super().param(name, init_fn, *init_args, **init_kwargs)


def input_norm(x):
    """Each patch minus its mean, over its std (unbiased) + 1e-7; statistics are constants
    for the gradient, as in the original (``.detach()``)."""
    x = jnp.asarray(x, jnp.promote_types(x.dtype, jnp.float32))
    axes = tuple(range(1, x.ndim))
    n = x[0].size
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.sum(jnp.square(x - mean), axis=axes, keepdims=True) / max(n - 1, 1)
    mean, std = lax.stop_gradient(mean), lax.stop_gradient(jnp.sqrt(var) + INPUT_EPS)
    return (x - mean) / std


class HardNet(Model):
    """HardNet descriptor network (see the module docstring); ``num_classes`` is the number of
    channels of the 8x8 head (128), the descriptor has ``num_classes * h * w`` elements for an
    ``h x w`` head map."""
    num_classes: int = 128
    dropout_rate: float = 0.3

    def check(self) -> None:
        super().check()
        if isinstance(self.dropout_rate, bool) or not isinstance(self.dropout_rate, (int, float)) \
                or not 0.0 <= float(self.dropout_rate) < 1.0:
            raise ValueError(f"dropout_rate must be a float in [0, 1), got {self.dropout_rate!r}")

    @nn.compact
    def __call__(self, x, train: bool = False):
        _checks.spatial_rank("x", x, 2)
        bn_kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, axis_name=self.bn_axis_name)
        x = input_norm(x)
        for i, (c, s) in enumerate(CONVS):
            x = Conv(c, 3, strides=s, padding=self.padding, fill=self.fill, dtype=self.dtype,
                     param_dtype=self.param_dtype, kernel_init=orthogonal_init,
                     name=f"conv{i + 1}")(x)
            x = nn.relu(AffineFreeBatchNorm(name=f"bn{i + 1}", **bn_kw)(x, train))
        if self.dropout_rate > 0:
            x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        x = Conv(self.num_classes, 8, padding="valid", dtype=self.dtype,
                 param_dtype=self.param_dtype, kernel_init=orthogonal_init, name="head")(x)
        x = AffineFreeBatchNorm(name="head_bn", **bn_kw)(x, train)
        # NHWC -> NCHW before flattening: the element order of torch's view(N, -1).
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        x = jnp.asarray(x, jnp.promote_types(x.dtype, jnp.float32))
        return x / jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + L2_EPS)

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        """Cumulative stride of every spatial module output (the 8x8 head is unstrided)."""
        out, cum = {}, 1
        for i, (_, s) in enumerate(CONVS):
            cum *= s
            out[f"conv{i + 1}"] = out[f"bn{i + 1}"] = cum
        if self.dropout_rate > 0:
            out["dropout"] = cum
        out["head"] = out["head_bn"] = cum
        return {k: (v, v) for k, v in out.items()}


def hardnet(**kwargs) -> HardNet:
    return HardNet(**kwargs)


__all__ = ["AffineFreeBatchNorm", "HardNet", "hardnet", "input_norm", "orthogonal_init",
           "torch_feature_indices"]
