"""jaxeq.train through the registries: red_green_net learns red_green (E2) in a few steps."""
import json

import numpy as np
import pytest

from jaxeq.train import default_config, fit

models = pytest.importorskip("jaxeq.models")
data = pytest.importorskip("jaxeq.data")


def test_red_green_net_loss_decreases(tmp_path):
    if "red_green_net" not in models.names() or "red_green" not in data.names():
        pytest.skip("red_green_net / red_green are not registered yet")
    c = default_config()
    c.model.name = "red_green_net"
    c.model.kwargs = {"padding": "same"}
    c.data.name = "red_green"
    c.data.kwargs = {"size": 192}   # 192 train / val / test samples
    c.optimizer.name = "adam"  # E2's Adadelta needs epochs to get going; Adam takes steps
    c.optimizer.lr = 3e-3
    c.optimizer.eps = 1e-8
    c.batch_size = 32
    c.epochs = 2
    c.log_every_steps = 1
    c.checkpoint_every_steps = 0
    c.progress = "off"
    r = fit(c, tmp_path)
    with open(tmp_path / "train_steps.jsonl") as f:
        losses = [json.loads(line)["loss"] for line in f]
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses
    assert r["best_val"]["loss"] < losses[0]
