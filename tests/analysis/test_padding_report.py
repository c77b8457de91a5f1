"""Padding diagnostics against pads worked out by hand (ResNet-18 at 224 and 225, the F-Conv
stem) and spatial-bias maps whose frame width follows from the receptive field."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq import models
from jaxeq.analysis.padding_report import (bias_border_width, bias_maps, even_sizes,
                                           layer_pads, model_features, window_reach)


@pytest.fixture(scope="module")
def resnet_same():
    return models.get("resnet18", padding="same", num_classes=4)


def test_window_reach_by_hand():
    assert window_reach(224, 7, 2, 3, 3) == (112, 1)   # torchvision stem at 224: (3, 2) used
    assert window_reach(225, 7, 2, 3, 3) == (113, 0)
    assert window_reach(115, 2, 2, 0, 0) == (57, 1)    # F-Conv stem pool drops a row
    assert window_reach(10, 3, 1, 1, 1) == (10, 0)


def test_resnet18_same_is_uneven_at_224_and_even_at_225(resnet_same):
    rows = {r.path: r for r in layer_pads(resnet_same, (1, 224, 224, 3))}
    stem = rows["conv1"]
    assert stem.pads == ((3, 3), (3, 3)) and stem.window == (7, 7) and stem.stride == (2, 2)
    assert stem.output_size == (112, 112) and stem.dropped == (1, 1)
    assert stem.effective == ((3, 2), (3, 2)) and stem.uneven
    # every stride-2 layer sees an even map (224 / 2^k): its trailing pad or row is unused
    strided = {"conv1", "maxpool"} | {f"layer{i}_0/{c}" for i in (2, 3, 4)
                                      for c in ("conv1", "downsample_conv")}
    assert {p for p, r in rows.items() if r.uneven} == strided
    assert rows["layer2_0/downsample_conv"].effective == ((0, -1), (0, -1))
    assert rows["layer4_0/conv1"].input_size == (14, 14)
    assert not any(r.uneven for r in layer_pads(resnet_same, (1, 225, 225, 3)))
    assert even_sizes(resnet_same, (1, 224, 224, 3), [224, 225]) == [225]


def test_full_padded_stem_pool_drops_its_last_row_and_column():
    rows = {r.path: r for r in layer_pads(models.get("resnet18", padding="full"),
                                          (1, 224, 224, 3))}
    assert rows["conv1"].pads == ((6, 6), (6, 6)) and rows["conv1"].output_size == (115, 115)
    pool = rows["maxpool"]
    assert pool.kind == "max_pool" and pool.pads == ((0, 0), (0, 0))
    assert pool.input_size == (115, 115) and pool.output_size == (57, 57)
    assert pool.effective == ((0, -1), (0, -1)) and pool.uneven


def _conv_stack(padding, fill, depth=2):
    """{name: output} of ``depth`` 3x3 convs with positive kernels (no bias)."""
    kernel = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (3, 3, 1, 1)), jnp.float32)

    def features(x):
        out = {}
        for i in range(depth):
            x = jq.conv(x, kernel, padding=padding, fill=fill)
            out[f"conv{i}"] = x
        return out

    return features


@pytest.mark.parametrize("padding,fill,widths", [
    ("same", "circular", [0, 0]),
    ("same", "zeros", [1, 2]),     # the pad reaches one pixel further per layer
    ("full", "zeros", [2, 4]),     # full grows the map by 2 per layer, all of it border
])
def test_bias_map_frame_width_is_the_reach_of_the_padding(padding, fill, widths):
    maps = bias_maps(_conv_stack(padding, fill), (1, 12, 12, 1), value=1.0)
    assert [bias_border_width(maps[f"conv{i}"]) for i in range(2)] == widths


def test_bias_maps_of_a_model_constant_when_circular_framed_when_zero_padded():
    # the parameter shapes do not depend on the padding: one set of seeded weights serves
    # every variant (drawn in numpy from an abstract init, which is far cheaper than init)
    shapes = jax.eval_shape(lambda x: models.get("red_green_net").init(jax.random.key(0), x),
                            jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32))
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.normal(size=s.shape) * 0.2, jnp.float32), shapes)

    def widths(padding, fill):
        model = models.get("red_green_net", padding=padding, fill=fill)
        maps = bias_maps(model_features(model, variables), (1, 16, 16, 3), value=1.0)
        assert set(maps) == {"conv1", "conv2", "conv3", "conv4"}  # the logits are left out
        return [bias_border_width(maps[f"conv{i}"]) for i in range(1, 5)]

    assert widths("same", "circular") == [0, 0, 0, 0]
    zero = widths("same", "zeros")
    assert zero[0] == 1 and all(w is None or w > 0 for w in zero)
    assert widths("full", "zeros")[0] == 2


def test_bias_border_width_edge_cases():
    assert bias_border_width(np.ones((4, 4))) == 0
    ring = np.ones((5, 5))
    ring[0] = 2.0
    assert bias_border_width(ring) == 1
    assert bias_border_width(np.arange(4.0).reshape(2, 2)) is None
    with pytest.raises(ValueError, match="input_shape"):
        layer_pads(partial(models.get, "resnet18")(), (1, 0, 4, 3))
