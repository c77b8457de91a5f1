"""jaxeq.train across devices, processes and crashes (each run in its own subprocess).

- 8 fake CPU devices follow the 1-device loss trajectory for the same global batch;
- 2 processes x 4 fake CPU devices (jax.distributed on 127.0.0.1) end with the 8-device
  parameters;
- a run SIGKILLed mid-epoch and restarted ends bitwise equal to an uninterrupted run.

All runs use the toys of tests/train/toys.py (tiny conv net with BatchNorm, 8x8 images).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from jaxeq.train import fit, load_variables
from tests.train import toys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Multi-device run settings: global batch 16 over 64 examples, 2 epochs -> 8 steps.
MULTI = dict(epochs=2, batch_size=16, log_every_steps=1, **{"optimizer.lr": 0.02,
                                                           "optimizer.weight_decay": 1e-3})

DRIVER = textwrap.dedent("""
    import json, sys
    from jaxeq.train import fit
    from tests.train import toys
    cfg = toys.toy_config(**json.loads(sys.argv[2]))
    if len(sys.argv) > 4:  # first show that a bad global batch is refused
        bad = toys.toy_config(**json.loads(sys.argv[4]))
        try:
            fit(bad, sys.argv[1] + "_bad", model=toys.TinyNet(), sources=toys.toy_sources())
        except ValueError as e:
            print("REFUSED:", e, flush=True)
    r = fit(cfg, sys.argv[1], model=toys.TinyNet(),
            sources=toys.toy_sources(**json.loads(sys.argv[3])))
    print("RESULT:" + json.dumps({k: r[k] for k in ("steps", "resumed_from_step", "num_devices",
                                                     "num_processes")}), flush=True)
""")


def _env(devices: int, **extra) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _start(workdir, config: dict, env: dict, source_kwargs=None, bad_config=None):
    args = [sys.executable, "-c", DRIVER, str(workdir), json.dumps(config),
            json.dumps(source_kwargs or {})] + ([json.dumps(bad_config)] if bad_config else [])
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=180) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _result(out: str) -> dict:
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT:"))[7:])


def _losses(workdir):
    with open(os.path.join(workdir, "train_steps.jsonl")) as f:
        return np.array([json.loads(line)["loss"] for line in f])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
    """One 8-device run (subprocess), shared by the two comparisons below."""
    work = tmp_path_factory.mktemp("eight") / "w"
    out = _finish(_start(work, MULTI, _env(8), bad_config=dict(MULTI, batch_size=12)))
    return work, out


def test_eight_devices_follow_the_one_device_trajectory(eight_devices, tmp_path):
    work8, out = eight_devices
    assert "REFUSED: config: batch_size=12 is not divisible by the device count 8" in out
    assert _result(out)["num_devices"] == 8
    assert jax.device_count() == 1
    fit(toys.toy_config(**MULTI), tmp_path, model=toys.TinyNet(), sources=toys.toy_sources())
    l1, l8 = _losses(tmp_path), _losses(work8)
    assert len(l1) == len(l8) == 8
    assert l1[-1] < 0.7 * l1[0]  # the trajectory does move
    # Same global batch, same math; only the order of float32 reductions differs.
    np.testing.assert_allclose(l8, l1, rtol=1e-5, atol=1e-6)
    v1, v8 = load_variables(tmp_path, "latest"), load_variables(work8, "latest")
    for a, b in zip(jax.tree.leaves(v1), jax.tree.leaves(v8)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    # BatchNorm statistics are those of the global batch: per-device statistics of 2 examples
    # would give a visibly different running variance.
    np.testing.assert_allclose(v8["batch_stats"]["bn"]["var"], v1["batch_stats"]["bn"]["var"],
                               rtol=1e-5)


def _start_two(workdir, config: dict, **source_kwargs) -> list:
    """Two processes of one jax.distributed run, 4 fake CPU devices each."""
    port = _free_port()
    return [_start(workdir, config, _env(4, JAXEQ_DISTRIBUTED="1",
                                         JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                         JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
                   source_kwargs=source_kwargs) for i in range(2)]


def _finish_all(procs) -> list[str]:
    try:
        return [_finish(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_two_processes_match_one_process_with_eight_devices(eight_devices, tmp_path):
    work8, _ = eight_devices
    outs = _finish_all(_start_two(tmp_path / "w", MULTI))
    assert [_result(o)["num_processes"] for o in outs] == [2, 2]
    assert [_result(o)["num_devices"] for o in outs] == [8, 8]
    v2, v8 = load_variables(tmp_path / "w", "latest"), load_variables(work8, "latest")
    for a, b in zip(jax.tree.leaves(v8), jax.tree.leaves(v2)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_losses(tmp_path / "w"), _losses(work8), rtol=1e-6)


def _steps_present(workdir):
    d = os.path.join(workdir, "checkpoints", "latest")
    return [int(n) for n in os.listdir(d) if n.isdigit()] if os.path.isdir(d) else []


def _records(workdir, name):
    with open(os.path.join(workdir, name)) as f:
        rows = [json.loads(line) for line in f]
    drop = ("time_s", "steps_per_s", "images_per_s")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path):
    # 64 examples, batch 8 -> 8 steps per epoch, 2 epochs; "latest" every 3 steps.
    config = dict(epochs=2, checkpoint_every_steps=3, log_every_steps=2)
    env = _env(1)
    straight = _start(tmp_path / "straight", config, env)
    # The victim reads its data slowly (sleeps, no CPU) so that it is surely killed mid-run.
    victim = _start(tmp_path / "resumed", config, env, source_kwargs={"delay_s": 0.02})
    try:
        deadline = time.time() + 150
        while not any(9 <= s < 16 for s in _steps_present(tmp_path / "resumed")):
            assert victim.poll() is None and time.time() < deadline, victim.communicate()[0]
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)  # mid epoch 2 (steps 9..16), while it computes
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    out = _finish(_start(tmp_path / "resumed", config, env))
    resumed_from = _result(out)["resumed_from_step"]
    assert resumed_from is not None and 9 <= resumed_from < 16 and resumed_from % 8 != 0
    _finish(straight)
    a = load_variables(tmp_path / "straight", "latest")
    b = load_variables(tmp_path / "resumed", "latest")
    assert a["step"] == b["step"] == 16
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)  # bitwise on CPU
    for name in ("metrics.jsonl", "train_steps.jsonl"):
        assert _records(tmp_path / "straight", name) == _records(tmp_path / "resumed", name)


def test_two_processes_killed_mid_epoch_resume_to_the_uninterrupted_parameters(eight_devices,
                                                                               tmp_path):
    work8, _ = eight_devices  # one uninterrupted process, same global batches
    config = dict(MULTI, checkpoint_every_steps=3)  # 4 steps per epoch: saves at 3 and 6

    victims = _start_two(tmp_path / "w", config, delay_s=0.05)  # slow reads (sleeps): surely killed before the end
    try:
        deadline = time.time() + 150
        while not _steps_present(tmp_path / "w"):
            assert all(p.poll() is None for p in victims) and time.time() < deadline, \
                victims[0].communicate()[0]
            time.sleep(0.02)
        for p in victims:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
    finally:
        for p in victims:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in victims] == [-signal.SIGKILL] * 2
    outs = _finish_all(_start_two(tmp_path / "w", config))
    resumed = [_result(o)["resumed_from_step"] for o in outs]
    assert resumed[0] == resumed[1] and resumed[0] in (3, 6), resumed  # mid-epoch
    v2, v8 = load_variables(tmp_path / "w", "latest"), load_variables(work8, "latest")
    assert v2["step"] == v8["step"] == 8
    for a, b in zip(jax.tree.leaves(v8), jax.tree.leaves(v2)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
