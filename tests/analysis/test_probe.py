"""`jaxeq probe`: the layer table per variant, the PNGs and the JSON rows."""
import json
import os

import numpy as np
import pytest

from jaxeq import cli
from jaxeq.analysis import probe
from jaxeq.cli import probe as probe_cli


def test_probe_toy_net_writes_table_and_plots(tmp_path, capsys):
    out = tmp_path / "probe"
    rc = cli.main(["probe", "--model", "toy_strided", "--variants", "same:zeros",
                   "same:circular", "--size", "16", "--max-shift", "2", "--action", "roll",
                   "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "same-zeros" in text and "same-circular" in text and "0:conv" in text
    for name in ("error_vs_depth.png", "error_map.png", "probe.json"):
        assert os.path.getsize(out / name) > 0
    data = json.loads((out / "probe.json").read_text())
    circ = {r["path"]: r for r in data["variants"]["same-circular"]}
    zero = {r["path"]: r for r in data["variants"]["same-zeros"]}
    assert circ["2:conv"]["stride"] == [2, 2] and circ["4:conv"]["stride"] == [4, 4]
    assert circ["0:conv"]["max"] < 1e-5 and zero["0:conv"]["max"] > 1e-2


def test_probe_input_and_bn_perturbation():
    x = probe.probe_input(12, 2, 1, "translate", 3, seed=0)
    assert np.all(x[:, :3] == 0) and np.all(x[:, -3:] == 0) and np.any(x[:, 3:9, 3:9] != 0)
    with pytest.raises(ValueError, match="margin"):
        probe.probe_input(6, 1, 1, "translate", 3, seed=0)
    variables = {"params": {"bn": {"scale": np.ones(3, np.float32), "bias": np.zeros(3, np.float32)},
                            "conv": {"bias": np.zeros(3, np.float32)}},
                 "batch_stats": {"bn": {"mean": np.zeros(3, np.float32), "var": np.ones(3, np.float32)}}}
    moved = probe.perturb_batchnorm(variables, 0.5, seed=1)
    assert np.any(moved["params"]["bn"]["bias"] != 0)
    assert np.all(moved["params"]["conv"]["bias"] == 0)  # not a BatchNorm
    assert np.any(moved["batch_stats"]["bn"]["mean"] != 0)
    assert np.all(moved["batch_stats"]["bn"]["var"] == 1)


def test_probe_bad_variant():
    args = cli.argparse.Namespace(variants=["same-zeros"])
    with pytest.raises(ValueError, match="PADDING:FILL"):
        probe_cli._variants(args)


def test_probe_registry_model():
    models = pytest.importorskip("jaxeq.models")
    if "rook_net" not in models.names():
        pytest.skip("rook_net not registered")
    x = probe.probe_input(16, 1, 1, "translate", 4, seed=0)
    import jaxeq as jq
    rows = probe.probe_variant("rook_net", "full", "zeros", x, jq.shift_grid(2, step=2),
                               action="translate", border=1, bn_shift=0.0, chunk=None, seed=0,
                               error_maps=False)
    spatial = [r for r in rows if r["kind"] == "equivariant"]
    assert spatial and all(r["max"] < 1e-5 for r in spatial)


def test_probe_input_for_video_models_is_3d():
    x = probe.probe_input((6, 12, 10), 3, 2, "translate", 2, seed=0)
    assert x.shape == (2, 6, 12, 10, 3)
    assert np.all(x[:, :2] == 0) and np.all(x[:, :, -2:] == 0) and np.all(x[:, :, :, :2] == 0)
    assert np.all(x[:, 2:4, 2:10, 2:8] != 0)
    with pytest.raises(ValueError, match="margin"):
        probe.probe_input((4, 12, 12), 3, 1, "translate", 2, seed=0)
