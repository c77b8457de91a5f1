"""jaxeq.weights: reading state dicts (.pth, .npz, .safetensors), conversion and fit errors."""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxeq import models, weights
from tests.conftest import torch_or_skip


def red_green_state(rng, num_classes=2):
    """A red_green_net state dict with torch's names and shapes (OIHW kernels, fc)."""
    state, c_in = {}, 3
    for i, c in enumerate((32, 32, 64, 64)):
        state[f"conv{i + 1}.weight"] = rng.standard_normal((c, c_in, 3, 3)).astype(np.float32)
        c_in = c
    state["fc.weight"] = rng.standard_normal((num_classes, 64)).astype(np.float32)
    state["fc.bias"] = rng.standard_normal((num_classes,)).astype(np.float32)
    return state


def test_conversion_layouts(rng):
    state = red_green_state(rng)
    v = weights.load_torch(state, "red_green_net")
    np.testing.assert_array_equal(v["params"]["conv2"]["kernel"],
                                  state["conv2.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(v["params"]["head"]["kernel"], state["fc.weight"].T)
    np.testing.assert_array_equal(v["params"]["head"]["bias"], state["fc.bias"])
    # One checkpoint loads into every padding variant.
    for padding in ("valid", "full"):
        w = weights.load_torch(state, "red_green_net", padding=padding)
        assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, v, w))


def test_misfit_lists_every_offending_key(rng):
    state = red_green_state(rng)
    state["conv9.weight"] = state.pop("conv4.weight")
    state["conv1.weight"] = state["conv1.weight"][:, :, :2, :2]
    with pytest.raises(ValueError) as err:
        weights.load_torch(state, "red_green_net")
    msg = str(err.value)
    assert "missing keys (1): conv4.weight" in msg
    assert "unexpected keys (1): conv9.weight" in msg
    assert "shape mismatches (1): conv1.weight" in msg
    with pytest.raises(ValueError, match="rook_net"):
        weights.load_torch(red_green_state(rng), "rook_net")


def test_exclude_head_keeps_fresh_classifier(rng):
    state = red_green_state(rng, num_classes=1000)
    with pytest.raises(ValueError, match="fc.weight"):
        weights.load_torch(state, "red_green_net", num_classes=5)
    v = weights.load_torch(state, "red_green_net", num_classes=5, exclude=("head",),
                           rng=jax.random.PRNGKey(1))
    assert v["params"]["head"]["kernel"].shape == (64, 5)
    np.testing.assert_array_equal(v["params"]["conv1"]["kernel"],
                                  state["conv1.weight"].transpose(2, 3, 1, 0))
    with pytest.raises(ValueError, match="exclude"):
        weights.load_torch(state, "red_green_net", exclude=("fc",))


def test_npz_round_trip_and_module_prefix(rng, tmp_path):
    state = {"module." + k: a for k, a in red_green_state(rng).items()}
    path = weights.save_npz(state, tmp_path / "w.npz")
    loaded = weights.read_state_dict(path)
    assert sorted(loaded) == sorted(k[len("module."):] for k in state)
    v = weights.load_torch(path, "red_green_net")
    np.testing.assert_array_equal(v["params"]["conv3"]["kernel"],
                                  state["module.conv3.weight"].transpose(2, 3, 1, 0))
    with pytest.raises(ValueError, match=".npz"):
        weights.save_npz(state, tmp_path / "w.pth")


def write_safetensors(path, tensors):
    """Minimal writer for the test (header length, JSON header, little-endian data)."""
    header, chunks, offset = {}, [], 0
    for name, (code, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    blob = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob + b"".join(chunks))


def test_safetensors_reader(rng, tmp_path):
    import ml_dtypes
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = np.array([1.5, -2.25], dtype=ml_dtypes.bfloat16)
    c = np.arange(3, dtype=np.int64)
    write_safetensors(tmp_path / "t.safetensors", {"a": ("F32", a), "b": ("BF16", b),
                                                   "c": ("I64", c)})
    got = weights.read_state_dict(tmp_path / "t.safetensors")
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], np.array([1.5, -2.25], np.float32))
    np.testing.assert_array_equal(got["c"], c)


def test_pth_via_torch_and_missing_torch_message(rng, tmp_path, monkeypatch):
    torch = torch_or_skip()
    state = {k: torch.from_numpy(a) for k, a in red_green_state(rng).items()}
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    v = weights.load_torch(tmp_path / "w.pth", "red_green_net")
    np.testing.assert_array_equal(v["params"]["head"]["bias"], state["fc.bias"].numpy())
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install torch"):
        weights.read_state_dict(tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError):
        weights.read_state_dict(tmp_path / "nope.pth")
    (tmp_path / "w.json").touch()
    with pytest.raises(ValueError, match="must end with"):
        weights.read_state_dict(tmp_path / "w.json")


def _fake_state(model_name, **kwargs):
    """A torch-named state dict for ``model_name`` built from the model's own tree (inverse
    of the conversion), to check the name mapping covers every parameter."""
    model = models.get(model_name, **kwargs)
    shape = models.example_input_shape(model_name)
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape), train=False))
    state = {}
    for path, a in traverse_util.flatten_dict(v).items():
        key = f"{weights.torch_prefix(model_name, path[1:-1])}.{weights._LEAF[path[-1]]}"
        arr = np.zeros(a.shape, np.float32)
        if path[-1] == "kernel":
            arr = arr.T if arr.ndim == 2 else np.transpose(arr, (3, 2, 0, 1))
        state[key] = arr
    return state


@pytest.mark.parametrize("name,sample_keys", [
    ("resnet50", ["conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight",
                  "layer4.2.bn3.bias", "fc.weight"]),
    ("densenet121", ["features.conv0.weight", "features.denseblock4.denselayer16.conv2.weight",
                     "features.transition3.norm.running_mean", "features.norm5.weight",
                     "classifier.bias"]),
    ("vgg16", ["features.0.weight", "features.28.bias", "classifier.0.weight",
               "classifier.3.bias", "classifier.6.weight"]),
    ("bagnet33", ["conv1.weight", "conv2.weight", "bn1.weight", "layer3.0.downsample.1.bias",
                  "fc.bias"]),
])
def test_torchvision_names(name, sample_keys):
    state = _fake_state(name)
    assert set(sample_keys) <= set(state)
    variables = weights.load_torch(state, name)  # every key consumed, nothing missing
    assert set(variables) == ({"params"} if name == "vgg16" else {"params", "batch_stats"})


def test_old_densenet_key_names():
    state = _fake_state("densenet121")
    old = {k.replace("denselayer1.norm1.", "denselayer1.norm.1."): a for k, a in state.items()}
    assert old.keys() != state.keys()
    weights.load_torch(old, "densenet121")


def _lpf_state(depth=18, padding="same", **kwargs):
    """The state dict of the paper's models_lpf / models_fconv_lpf ResNet (torch reference)."""
    torch = torch_or_skip()
    from jaxeq.bench import torch_nets
    torch.manual_seed(0)
    net = torch_nets.resnet(depth, padding, "blur", num_classes=10, width=16, **kwargs)
    return {k: v.numpy() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("depth,padding", [(18, "same"), (18, "full"), (50, "same")])
def test_lpf_checkpoint_layout_loads_into_blur_resnets(depth, padding):
    state = _lpf_state(depth, padding)
    blurred = "conv2" if depth == 18 else "conv3"
    for key in ("maxpool.1.filt", f"layer2.0.{blurred}.0.filt", f"layer2.0.{blurred}.1.weight",
                "layer3.0.downsample.0.filt", "layer3.0.downsample.1.weight",
                "layer3.0.downsample.2.running_var"):
        assert key in state, key
    kwargs = dict(padding=padding, pool="blur", num_classes=10, width=16)
    v = weights.load_torch(state, f"resnet{depth}", **kwargs)  # every key used, none missing
    np.testing.assert_array_equal(v["params"]["layer2_0"][blurred]["kernel"],
                                  state[f"layer2.0.{blurred}.1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(v["params"]["layer3_0"]["downsample_conv"]["kernel"],
                                  state["layer3.0.downsample.1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(v["batch_stats"]["layer3_0"]["downsample_bn"]["var"],
                                  state["layer3.0.downsample.2.running_var"])
    if depth == 50:  # an unstrided downsample has no blur: (conv, BN) keep indices 0, 1
        np.testing.assert_array_equal(v["params"]["layer1_0"]["downsample_conv"]["kernel"],
                                      state["layer1.0.downsample.0.weight"].transpose(2, 3, 1, 0))
    # without the filt buffers (e.g. saved as non-persistent) the layout is still recognised
    weights.load_torch({k: a for k, a in state.items() if not k.endswith(".filt")},
                       f"resnet{depth}", **kwargs)


def test_lpf_blur_filters_are_checked():
    state = _lpf_state()
    kwargs = dict(pool="blur", num_classes=10, width=16)
    bad = dict(state)
    bad["layer3.0.conv2.0.filt"] = bad["layer3.0.conv2.0.filt"] * 1.5
    with pytest.raises(ValueError, match=r"layer3\.0\.conv2\.0\.filt.*binomial"):
        weights.load_torch(bad, "resnet18", **kwargs)
    with pytest.raises(ValueError, match="blur_filter_size=4"):  # Zhang's default filter 4
        weights.load_torch(_lpf_state(filter_size=4), "resnet18", **kwargs)
    weights.load_torch(_lpf_state(filter_size=4), "resnet18", blur_filter_size=4, **kwargs)


def test_lpf_checkpoint_into_max_pool_resnet_says_why():
    with pytest.raises(ValueError, match="pool='blur'"):
        weights.load_torch(_lpf_state(), "resnet18", num_classes=10, width=16)


def test_torchvision_layout_still_loads_into_blur_resnet():
    torch_or_skip()
    from jaxeq.bench import torch_nets
    net = torch_nets.resnet(18, num_classes=10, width=16)  # torchvision's keys, no filt
    v = weights.load_torch(net.state_dict(), "resnet18", pool="blur", num_classes=10, width=16)
    np.testing.assert_array_equal(v["params"]["layer2_0"]["conv2"]["kernel"],
                                  net.state_dict()["layer2.0.conv2.weight"].numpy()
                                  .transpose(2, 3, 1, 0))


@pytest.mark.parametrize("content, raised", [
    (b"", EOFError("Ran out of input")), (b"hello, this is text\n", KeyError(101)),
    (bytes(range(256)), __import__("pickle").UnpicklingError("invalid load key, '\\x00'."))])
def test_a_file_that_is_not_a_state_dict_says_so(tmp_path, monkeypatch, content, raised):
    path = tmp_path / "w.pth"
    path.write_bytes(content)

    def load(*args, **kwargs):  # what torch.load raises on such files
        raise raised

    monkeypatch.setattr(weights, "_import_torch", lambda: type("T", (), {"load": load}))
    with pytest.raises(ValueError, match=rf"^not a PyTorch state dict: {path} \("
                                         rf"{type(raised).__name__}"):
        weights.load_torch(path, "red_green_net")


@pytest.mark.parametrize("content", [b"", b"hello\n", bytes(range(256))])
def test_garbage_npz_safetensors_and_real_torch_files(tmp_path, content):
    for name in ("w.npz", "w.safetensors"):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"^not a PyTorch state dict: .*{name} \("):
            weights.read_state_dict(tmp_path / name)
    torch_or_skip()
    (tmp_path / "w.pth").write_bytes(content)
    with pytest.raises(ValueError, match=r"^not a PyTorch state dict: .*w\.pth \("):
        weights.read_state_dict(tmp_path / "w.pth")
