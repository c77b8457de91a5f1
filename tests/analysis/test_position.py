"""Position-information readouts (jaxeq.analysis.position) on cases whose answer is known."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq.analysis import position as P

SIZE = 32


def _conv_stack(fill: str):
    g = np.random.default_rng(0)
    ws = [jnp.asarray(g.standard_normal((3, 3, c, 8)) * 0.5, jnp.float32) for c in (3, 8, 8)]

    def features(x):
        out = {}
        for i, w in enumerate(ws):
            x = jax.nn.relu(jq.conv(x, w, padding="same", fill=fill) + 0.3)
            out[f"c{i}"] = x
        return out
    return features


def _coordinates(x):
    yy, xx = jnp.meshgrid(jnp.linspace(0, 1, x.shape[1]), jnp.linspace(0, 1, x.shape[2]),
                          indexing="ij")
    return {"xy": jnp.broadcast_to(jnp.stack([yy, xx], -1)[None], x.shape[:3] + (2,)),
            "logits": jnp.zeros((x.shape[0], 3))}  # no spatial dims: ignored


def test_targets_and_spearman_on_known_values():
    h = P.position_target("horizontal", 4)
    np.testing.assert_allclose(h[0], [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(P.position_target("vertical", 4), h.T)
    g = P.position_target("gaussian", 5)
    assert g[2, 2] == pytest.approx(1.0) and g[0, 0] < g[1, 1] < g[2, 2]
    assert P.spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert P.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get their mean rank: ranks (0.5, 0.5, 2, 3) vs (0, 1, 2, 3)
    ra, rb = np.array([0.5, 0.5, 2, 3]), np.arange(4.0)
    want = np.corrcoef(ra, rb)[0, 1]
    assert P.spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(want)
    assert P.spearman(np.full(4, 0.5) + 1e-9 * np.arange(4), np.arange(4)) == 0.0  # float noise
    with pytest.raises(ValueError, match="kind"):
        P.position_target("diagonal", 4)


def test_ridge_readout_recovers_a_linear_map():
    g = np.random.default_rng(1)
    feats = g.standard_normal((3, 4, 4, 5))
    w = np.array([0.5, -1.0, 0.0, 2.0, 0.25])
    y = feats @ w + 0.3
    readout = P.fit_readout(feats, y, ridge=1e-9)
    np.testing.assert_allclose(P.predict(readout, feats), y, atol=1e-6)


def test_coordinate_channels_are_read_perfectly_on_every_input():
    ins = P.synthetic_inputs(2, SIZE)
    rows = P.position_information(_coordinates, ins["noise"], ins,
                                  targets=("horizontal", "vertical"), grid=8)
    assert {r["layer"] for r in rows} == {"xy", "all"}
    for r in rows:
        assert r["spc"] > 0.99 and r["mae"] < 0.01, r


@pytest.mark.parametrize("fill", ["circular", "reflect"])
def test_padding_that_keeps_constants_constant_carries_no_position_on_constant_inputs(fill):
    ins = P.synthetic_inputs(2, SIZE)
    rows = P.position_information(_conv_stack(fill), ins["white"],
                                  {"black": ins["black"], "white": ins["white"]},
                                  targets=("horizontal", "gaussian"), grid=8)
    for r in rows:
        assert r["spc"] == 0.0, r
    for r in P.border_reach(_conv_stack(fill), ins["white"], ins["white"], grid=16):
        np.testing.assert_allclose(r["ratio"], 1.0, atol=1e-9)
        assert r["reach"] == 0.0


def test_zero_padding_tells_position_only_near_the_border():
    white = P.synthetic_inputs(2, SIZE)["white"]
    reach = {r["layer"]: r for r in P.border_reach(_conv_stack("zeros"), white, white, grid=16)}
    for layer in ("c0", "c1", "c2"):  # every layer sees the zero border of a white image
        assert reach[layer]["ratio"][0] < 0.9, reach[layer]
        # beyond the receptive field of the border (3 px) the maps are constant: chance
        np.testing.assert_allclose(reach[layer]["ratio"][2:], 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="layers"):
        P.border_reach(_conv_stack("zeros"), white, white, layers=("c9",))
