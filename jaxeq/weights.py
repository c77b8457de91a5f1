"""Pretrained PyTorch weights -> jaxeq model variables.

``load_torch(source, model_name, **model_kwargs)`` converts a torchvision ResNet / DenseNet /
VGG state dict, a BagNet state dict (Brendel & Bethge's ``bagnets`` package) or one of the toy
nets into the variables of ``jaxeq.models.get(model_name, **model_kwargs)``: conv kernels
OIHW -> HWIO, linear weights (out, in) -> (in, out), BatchNorm ``weight``/``bias`` -> params
``scale``/``bias`` and ``running_mean``/``running_var`` -> batch_stats ``mean``/``var``. The
F-Conv variants keep torchvision's shapes, so one checkpoint loads into "same" and "full".

Sources: a mapping name -> array/tensor, or a file: ``.pth``/``.pt``/``.bin`` (read with
``torch.load(weights_only=True)``, needs torch), ``.npz`` or ``.safetensors`` (read without
torch). ``save_npz`` turns any source into an ``.npz`` for machines without torch.
Nothing is downloaded: the user supplies the file. torchvision's ImageNet checkpoints are the
files its model builders fetch (e.g. ``resnet18-f37072fd.pth``, ``resnet50-0676ba61.pth``,
``densenet121-a639ec97.pth``, ``vgg16-397923af.pth`` from download.pytorch.org/models, cached
under ``~/.cache/torch/hub/checkpoints``); BagNet's are the ``bagnet{8,16,32}.pth.tar`` files
linked from github.com/wielandbrendel/bag-of-local-features-models (they load as ``bagnet9``,
``bagnet17``, ``bagnet33``). Old DenseNet checkpoints' ``norm.1``-style keys are accepted.
Also HardNet (the authors' ``features`` Sequential; its affine-free BatchNorms carry only
running statistics) and Hara et al.'s 3D-ResNets (``conv1``, ``layer1.0.conv1``,
``downsample.0``/``.1``, ``fc``; 5-D kernels OIDHW -> DHWIO) as ``hardnet`` and
``resnet3d_18/34/50``. Their files come from the authors' repositories (github.com/DagnyT/hardnet
``pretrained/``, github.com/kenshohara/3D-ResNets-PyTorch; a training checkpoint's
``state_dict`` entry is found automatically).

BlurPool ResNets (``pool="blur"``) read two key layouts: torchvision's (a plain ResNet
checkpoint; the blurs hold no weights) and the ``*_lpf`` layout of the paper's ``models_lpf`` /
``models_fconv_lpf`` and of Zhang's antialiased-cnns, where a strided block's blurred conv is
``conv2.1`` (BasicBlock) or ``conv3.1`` (Bottleneck) behind the blur ``conv2.0`` / ``conv3.0``,
a strided downsample is ``downsample.0`` (blur), ``.1`` (conv), ``.2`` (BN) and the stem blur is
``maxpool.1``. The blurs' fixed ``filt`` buffers are not loaded but checked against jaxeq's
binomial filter of ``blur_filter_size``. The checkpoint does not record the blur's padding: the
paper's models pad it with zeros (jaxeq's default); Zhang's antialiased-cnns pads with reflect
(its ``BlurPool`` default), so its ``resnet*_lpf{2,3,4,5}`` files load with
``blur_fill="reflect"`` and that filter size (its builders default to 4).
"""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxeq import models
from jaxeq.pool import binomial_filter

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".ckpt")
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
         "var": "running_var"}
_IGNORED = ("num_batches_tracked",)


# ----------------------------------------------------------------------------------------------
# Reading state dicts

def _import_torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading a .pth checkpoint needs PyTorch: pip install torch (CPU wheel is enough), "
            "or convert the file once with jaxeq.weights.save_npz on a machine that has it and "
            "load the .npz here") from err
    return torch


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # a torch tensor; bfloat16 has no numpy dtype in torch
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy().copy()  # never alias torch's storage (it changes in train mode)
    return np.asarray(value)


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                       "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
                       "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``.safetensors`` file with numpy alone (8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    n = int.from_bytes(raw[:8], "little")
    if n > len(raw) - 8:
        raise ValueError(f"{path}: not a safetensors file (header length {n} past the end)")
    header = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        code = info["dtype"]
        if code == "BF16":
            import ml_dtypes  # a dependency of jax
            dtype = np.dtype(ml_dtypes.bfloat16)
        elif code in _SAFETENSORS_DTYPES:
            dtype = np.dtype(_SAFETENSORS_DTYPES[code])
        else:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {code}")
        lo, hi = info["data_offsets"]
        arr = np.frombuffer(data[lo:hi], dtype=dtype.newbyteorder("<")).reshape(info["shape"])
        out[name] = arr.astype(np.float32) if code == "BF16" else arr.copy()
    return out


def _unwrap(obj: Any) -> Mapping:
    """Accept a bare state dict or the usual wrappers ({"state_dict": ...}, {"model": ...})."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"checkpoint must hold a state dict (a mapping name -> tensor), got "
                        f"{type(obj).__name__}")
    for key in ("state_dict", "model", "model_state_dict"):
        if key in obj and isinstance(obj[key], Mapping):
            return obj[key]
    return obj


# What the readers raise on a file that is not what its suffix says (torch.load on text, random
# bytes or an empty file: UnpicklingError, KeyError, EOFError or RuntimeError).
_UNREADABLE = (pickle.UnpicklingError, EOFError, KeyError, IndexError, RuntimeError, ValueError,
               zipfile.BadZipFile)


def _read_file(path: str) -> Any:
    """The object stored in a .npz, .safetensors or PyTorch checkpoint file."""
    lower = path.lower()
    if not lower.endswith(TORCH_SUFFIXES + (".npz", ".safetensors")):
        raise ValueError(f"checkpoint file must end with one of "
                         f"{TORCH_SUFFIXES + ('.npz', '.safetensors')}, got {path!r}")
    torch = _import_torch() if lower.endswith(TORCH_SUFFIXES) else None
    try:
        if lower.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if lower.endswith(".safetensors"):
            return read_safetensors(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as e:
        # The first sentence only: torch's later ones advise weights_only=False, which would
        # run code from an untrusted file.
        reason = " ".join(str(e).split()).split(". ")[0][:120]
        raise ValueError(f"not a PyTorch state dict: {path} ({type(e).__name__}"
                         f"{': ' + reason if reason else ''})") from e


def read_state_dict(source: Any) -> dict[str, np.ndarray]:
    """A flat ``{torch name: numpy array}`` dict from a mapping or a checkpoint file.

    A ``module.`` prefix (DataParallel) is removed when every key has it.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"checkpoint not found: {path}")
        obj = _read_file(path)
    else:
        obj = source
    state = {str(k): _to_numpy(v) for k, v in _unwrap(obj).items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    # torchvision's old DenseNet files: "norm.1.weight" -> "norm1.weight".
    state = {re.sub(r"\.(norm|relu|conv)\.(\d+)\.", r".\1\2.", k) if ".denselayer" in k else k: v
             for k, v in state.items()}
    return state


def save_npz(source: Any, path: str | os.PathLike) -> str:
    """Write the state dict of ``source`` (mapping or checkpoint file) to ``path`` (.npz).

    The ``.npz`` keeps torch's names, so ``load_torch(path, ...)`` reads it without torch.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"path must end with .npz, got {path!r}")
    state = read_state_dict(source)
    np.savez(path, **state)
    return path


# ----------------------------------------------------------------------------------------------
# Names: flax module path -> torch module prefix

def _family(model_name: str) -> str:
    # resnet3d_* shares the ResNet names (Hara's 3D-ResNets follow torchvision's layout).
    for fam in ("resnet", "bagnet", "densenet", "vgg", "hardnet"):
        if model_name.startswith(fam):
            return fam
    return "toy"


def torch_prefix(model_name: str, path: Sequence[str]) -> str:
    """The torch module name that holds the parameters of the flax module at ``path``."""
    fam = _family(model_name)
    if fam in ("resnet", "bagnet", "toy"):
        if tuple(path) == ("head",):
            return "fc"
        parts = []
        for p in path:
            m = re.fullmatch(r"(layer\d+)_(\d+)", p)
            if m:
                parts += [m.group(1), m.group(2)]
            elif p == "downsample_conv":
                parts.append("downsample.0")
            elif p == "downsample_bn":
                parts.append("downsample.1")
            else:
                parts.append(p)
        return ".".join(parts)
    if fam == "densenet":
        if tuple(path) == ("head",):
            return "classifier"
        return "features." + ".".join(path)
    if fam == "hardnet":
        from jaxeq.models.hardnet import torch_feature_indices as hardnet_indices
        return f"features.{hardnet_indices()[path[-1]]}"
    # vgg
    from jaxeq.models.vgg import torch_feature_indices
    name = path[-1]
    fixed = {"fc1": "classifier.0", "fc2": "classifier.3", "head": "classifier.6"}
    if name in fixed:
        return fixed[name]
    return f"features.{torch_feature_indices()[name]}"


# ----------------------------------------------------------------------------------------------
# The *_lpf (BlurPool) ResNet layout

_LPF_KEY = re.compile(r"(^|\.)filt$|^layer\d+\.\d+\.(conv[23]\.1|downsample\.2)\.weight$")


def _is_lpf_layout(state: Mapping) -> bool:
    """Whether ``state`` names its BlurPool ResNet layers as ``models_lpf`` / antialiased-cnns."""
    return any(_LPF_KEY.search(k) for k in state)


def _lpf_layout(model_name: str, model) -> tuple[dict, dict]:
    """({jaxeq module path: torch prefix} for the layers the ``*_lpf`` layout renames,
    {torch ``filt`` key: channels}) of a BlurPool ResNet."""
    renames, filters = {}, {"maxpool.1.filt": model.width}
    blurred_conv = "conv2" if model.block == "basic" else "conv3"
    inplanes = model.width
    for name, spec in model._blocks():
        prefix = torch_prefix(model_name, (name,))
        if spec.stride > 1:
            renames[(name, blurred_conv)] = f"{prefix}.{blurred_conv}.1"
            filters[f"{prefix}.{blurred_conv}.0.filt"] = spec.planes
            if spec.downsample:
                renames[(name, "downsample_conv")] = f"{prefix}.downsample.1"
                renames[(name, "downsample_bn")] = f"{prefix}.downsample.2"
                filters[f"{prefix}.downsample.0.filt"] = inplanes
        inplanes = spec.out_planes
    return renames, filters


def _check_blur_filter(key: str, arr: np.ndarray, channels: int, filter_size: int) -> None:
    want = binomial_filter(filter_size, 2)
    shape = (channels, 1) + want.shape
    if tuple(arr.shape) != shape or not np.allclose(np.asarray(arr, np.float64),
                                                    np.broadcast_to(want, shape),
                                                    rtol=1e-6, atol=1e-7):
        raise ValueError(
            f"checkpoint blur filter {key!r} (shape {tuple(arr.shape)}) is not the normalised "
            f"binomial filter of blur_filter_size={filter_size} (shape {shape}); build the "
            f"model with the checkpoint's filter size (e.g. blur_filter_size={arr.shape[-1]})")


def _to_flax(leaf: str, arr: np.ndarray) -> np.ndarray:
    if leaf == "kernel":
        if arr.ndim == 2:  # Linear (out, in) -> (in, out)
            return arr.T
        if arr.ndim >= 3:  # Conv (out, in, *k) -> (*k, in, out): OIHW -> HWIO, OIDHW -> DHWIO
            return np.transpose(arr, tuple(range(2, arr.ndim)) + (1, 0))
    return arr


def load_torch(source: Any, model_name: str, *, exclude: Sequence[str] = (),
               rng: Any = None, input_shape: Sequence[int] | None = None,
               **model_kwargs) -> dict[str, Any]:
    """Variables of ``jaxeq.models.get(model_name, **model_kwargs)`` from a PyTorch state dict.

    ``exclude``: top-level module names (e.g. ``("head",)`` for a new classifier) that keep
    their fresh initialisation from ``rng`` (default ``PRNGKey(0)``) and whose checkpoint keys
    are ignored. Raises ``ValueError`` listing every missing, unexpected or mis-shaped key.
    """
    state = read_state_dict(source)
    model = models.get(model_name, **model_kwargs)
    shape = tuple(input_shape or models.example_input_shape(model_name))
    x = jnp.zeros(shape, jnp.float32)
    exclude = tuple(exclude)
    if exclude:
        key = jax.random.PRNGKey(0) if rng is None else rng
        variables = jax.jit(lambda k: model.init(k, x, train=False))(key)
    else:
        variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    flat = traverse_util.flatten_dict(dict(variables))
    top = {path[1] for path in flat}
    unknown = [e for e in exclude if e not in top]
    if unknown:
        raise ValueError(f"exclude names {unknown} are not modules of {model_name}; "
                         f"top-level modules: {sorted(top)}")

    out, used, missing, mismatched = {}, set(), [], []
    renames, hint = {}, None
    if _is_lpf_layout(state):
        if isinstance(model, models.ResNet) and model.pool == "blur":
            renames, filters = _lpf_layout(model_name, model)
            for fkey, channels in filters.items():
                if fkey in state:
                    _check_blur_filter(fkey, state[fkey], channels, model.blur_filter_size)
                    used.add(fkey)
        else:
            hint = ("  the checkpoint has the *_lpf BlurPool ResNet layout (keys like "
                    "'layer2.0.conv2.1.weight', '*.filt'): build a ResNet with pool='blur'")
    for path, ref in flat.items():
        modules, leaf = path[1:-1], path[-1]
        if modules[0] in exclude:
            out[path] = ref
            continue
        prefix = renames.get(tuple(modules)) or torch_prefix(model_name, modules)
        tkey = f"{prefix}.{_LEAF[leaf]}"
        if tkey not in state:
            missing.append(tkey)
            continue
        used.add(tkey)
        arr = _to_flax(leaf, state[tkey])
        if tuple(arr.shape) != tuple(ref.shape):
            mismatched.append(f"{tkey}: checkpoint {tuple(state[tkey].shape)} -> "
                              f"{tuple(arr.shape)}, model {'/'.join(path)} {tuple(ref.shape)}")
            continue
        out[path] = jnp.array(arr, ref.dtype)  # a copy, never a view of the source
    skip = tuple(torch_prefix(model_name, (e,)) + "." for e in exclude)
    unexpected = sorted(k for k in state if k not in used and not k.endswith(_IGNORED)
                        and not k.startswith(skip))
    if missing or unexpected or mismatched:
        lines = [f"checkpoint does not fit {model_name} ({model_kwargs or 'default kwargs'}):"]
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches", mismatched)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:40])
                             + (" ..." if len(keys) > 40 else ""))
        if hint:
            lines.append(hint)
        raise ValueError("\n".join(lines))
    return traverse_util.unflatten_dict(out)
