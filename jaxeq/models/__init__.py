"""Model registry: the paper's architectures by name, each with the padding switch.

``get(name, **kwargs)`` builds a ``flax.linen.Module`` called as
``model.apply(variables, x, train=False)`` on NHWC float input; ``names()`` lists the names.
Common keyword arguments: ``padding`` ("valid" | "same" | "full"), ``fill`` ("zeros",
"circular", "reflect", "replicate"), ``num_classes``, ``dtype`` (compute), ``param_dtype``,
``bn_axis_name``; ResNets also ``pool`` ("max" | "blur"), ``global_pool`` ("avg" | "max"),
``stem_pool_kernel``, ``stem_pool_padding`` (the paper's 4QI ResNet-18: kernel 2, padding 1),
``blur_filter_size``, ``blur_fill`` (None: the model's fill, zeros as the paper's models_lpf;
"reflect" as Zhang's antialiased-cnns). Every model names its classifier ``head`` and has
``feature_strides()`` (module path -> cumulative stride), usable on the unbound module.
Also ``hardnet`` (patch descriptor) and ``resnet3d_18/34/50`` (NDHWC; ``temporal_padding/fill``).
"""
from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

from jaxeq.models.bagnet import BagNet, bagnet9, bagnet17, bagnet33
from jaxeq.models.densenet import DenseNet, densenet121
from jaxeq.models.hardnet import HardNet, hardnet
from jaxeq.models.resnet import ResNet, resnet18, resnet34, resnet50, resnet101
from jaxeq.models.resnet3d import ResNet3D, resnet3d_18, resnet3d_34, resnet3d_50
from jaxeq.models.toy import ConvNet, red_green_net, rook_net
from jaxeq.models.vgg import VGG, vgg16

# name -> (constructor, example input shape (N, H, W, C) for initialisation)
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], tuple[int, ...]]] = {
    "rook_net": (rook_net, (1, 32, 32, 1)),
    "red_green_net": (red_green_net, (1, 32, 32, 3)),
    "resnet18": (resnet18, (1, 64, 64, 3)),
    "resnet34": (resnet34, (1, 64, 64, 3)),
    "resnet50": (resnet50, (1, 64, 64, 3)),
    "resnet101": (resnet101, (1, 64, 64, 3)),
    "densenet121": (densenet121, (1, 64, 64, 3)),
    "bagnet9": (bagnet9, (1, 64, 64, 3)),
    "bagnet17": (bagnet17, (1, 64, 64, 3)),
    "bagnet33": (bagnet33, (1, 64, 64, 3)),
    "vgg16": (vgg16, (1, 64, 64, 3)),
    "hardnet": (hardnet, (1, 32, 32, 1)),
    "resnet3d_18": (resnet3d_18, (1, 8, 32, 32, 3)),
    "resnet3d_34": (resnet3d_34, (1, 8, 32, 32, 3)),
    "resnet3d_50": (resnet3d_50, (1, 8, 32, 32, 3)),
}


def names() -> list[str]:
    """Registered model names."""
    return list(_REGISTRY)


def _entry(name: str):
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"model name must be one of {names()}, got {name!r}")
    return _REGISTRY[name]


def get(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with these keyword arguments."""
    ctor = _entry(name)[0]
    try:
        return ctor(**kwargs)
    except TypeError as err:
        if "unexpected keyword" in str(err) or "got multiple values" in str(err):
            raise TypeError(f"{name}: {err}") from err
        raise


def example_input_shape(name: str) -> tuple[int, ...]:
    """A small (N, H, W, C) input shape the model ``name`` accepts (for init / tests)."""
    return _entry(name)[1]


__all__ = ["BagNet", "ConvNet", "DenseNet", "HardNet", "ResNet", "ResNet3D", "VGG",
           "example_input_shape", "get", "names"]
