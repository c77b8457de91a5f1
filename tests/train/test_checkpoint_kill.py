"""A re-reached checkpoint step is never lost: its old copy stays until the new one is
committed, whatever instant the run dies at (an exception, or SIGKILL in a subprocess)."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeq.train import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPU = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])


@flax.struct.dataclass
class State:
    step: jax.Array
    params: dict


def _state(step: int, value: float) -> State:
    return State(step=jnp.asarray(step, jnp.int32), params={"w": jnp.full((3,), value)})


def _restored(workdir, which="best"):
    ckpts = checkpoint.Checkpoints(str(workdir))
    try:
        out = ckpts.restore(which, _state(0, 0.0), CPU)
    finally:
        ckpts.close()
    assert out is not None, f"no complete {which!r} checkpoint left in {workdir}"
    state, meta = out
    return int(state.step), float(state.params["w"][0]), meta["tag"]


def _listing(workdir):
    root = os.path.join(workdir, "checkpoints")
    return {d: sorted(os.listdir(os.path.join(root, d))) for d in sorted(os.listdir(root))}


def _save(workdir, which, step, value, tag):
    ckpts = checkpoint.Checkpoints(str(workdir))
    try:
        ckpts.save(which, _state(step, value), {"tag": tag})
    finally:
        ckpts.close()


def test_failed_resave_of_a_step_keeps_the_old_copy(tmp_path, monkeypatch):
    _save(tmp_path, "best", 3, 1.0, "first")
    ckpts = checkpoint.Checkpoints(str(tmp_path))

    def die(*_a, **_k):
        raise RuntimeError("killed mid-save")

    monkeypatch.setattr(ckpts.best, "save", die)  # after the old copy is set aside
    with pytest.raises(RuntimeError, match="killed mid-save"):
        ckpts.save("best", _state(3, 2.0), {"tag": "second"})
    ckpts.close()
    assert _listing(tmp_path)["best"] == [] and _listing(tmp_path)["best.previous"] == ["3"]
    assert _restored(tmp_path) == (3, 1.0, "first")
    assert checkpoint.has_checkpoint(str(tmp_path))
    assert checkpoint.load_variables(str(tmp_path), "best")["step"] == 3
    assert checkpoint.Checkpoints(str(tmp_path)).path("best").endswith(
        os.path.join("checkpoints", "best.previous", "3"))
    # the restarted run saves the step again: the new copy replaces the old, nothing left aside
    _save(tmp_path, "best", 3, 2.0, "second")
    assert _restored(tmp_path) == (3, 2.0, "second")
    assert "best.previous" not in _listing(tmp_path)


def test_failed_save_of_a_new_step_keeps_the_previous_step(tmp_path, monkeypatch):
    _save(tmp_path, "latest", 2, 1.0, "two")
    ckpts = checkpoint.Checkpoints(str(tmp_path))

    def die(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.ocp.JsonCheckpointHandler, "async_save", die)
    monkeypatch.setattr(checkpoint.ocp.JsonCheckpointHandler, "save", die)
    with pytest.raises(Exception):
        ckpts.save("latest", _state(4, 2.0), {"tag": "four"})
    monkeypatch.undo()
    ckpts.close()
    assert _restored(tmp_path, "latest") == (2, 1.0, "two")


def test_resave_after_an_interrupted_one_and_a_newer_step(tmp_path, monkeypatch):
    """A stale '.previous' copy never shadows a newer committed step, and goes at the next
    save."""
    _save(tmp_path, "best", 3, 1.0, "first")
    ckpts = checkpoint.Checkpoints(str(tmp_path))
    monkeypatch.setattr(ckpts.best, "save", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    with pytest.raises(OSError):
        ckpts.save("best", _state(3, 2.0), {"tag": "second"})
    ckpts.close()
    _save(tmp_path, "best", 5, 3.0, "five")
    assert _restored(tmp_path) == (5, 3.0, "five")
    assert "best.previous" not in _listing(tmp_path)


# SIGKILL at one of the instants of a re-save of step 3 (the old copy holds w=1, the new w=2).
DRIVER = textwrap.dedent("""
    import os, signal, sys
    import jax.numpy as jnp
    from jaxeq.train import checkpoint
    from tests.train.test_checkpoint_kill import _state
    point = sys.argv[2]

    def kill(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)

    ckpts = checkpoint.Checkpoints(sys.argv[1])
    if point == "after_set_aside":
        ckpts.best.save = kill
    elif point == "mid_write":  # the state is written into orbax's tmp folder, the meta not
        checkpoint.ocp.JsonCheckpointHandler.async_save = kill
        checkpoint.ocp.JsonCheckpointHandler.save = kill
    elif point == "before_drop":
        checkpoint.Checkpoints._drop_aside = kill
    elif point == "mid_drop":
        def rmtree(path, *a, **k):
            if path.endswith(".deleting") and os.path.isdir(path):
                kill()
        checkpoint.shutil.rmtree = rmtree
    ckpts.save("best", _state(3, 2.0), {"tag": "second"})
""")


@pytest.mark.parametrize("point, value", [("after_set_aside", 1.0), ("mid_write", 1.0),
                                          ("before_drop", 2.0), ("mid_drop", 2.0)])
def test_sigkill_during_a_resave_leaves_a_complete_step(tmp_path, point, value):
    _save(tmp_path, "best", 3, 1.0, "first")
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path), point], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert _restored(tmp_path) == (3, value, "first" if value == 1.0 else "second")
    _save(tmp_path, "best", 3, 4.0, "third")  # the restarted run gets through
    assert _restored(tmp_path) == (3, 4.0, "third")
    assert _listing(tmp_path) == {"best": ["3"], "latest": []}


# ----------------------------------------------------------------------------- through fit
def _fit(workdir, **overrides):
    from jaxeq.train import fit
    from tests.train import toys
    return fit(toys.toy_config(**overrides), str(workdir), model=toys.TinyNet(),
               sources=toys.toy_sources())


def test_run_killed_between_best_and_latest_resumes_to_the_same_parameters(tmp_path,
                                                                           monkeypatch):
    """The last epoch writes 'best' at step 16, then dies before 'latest': the resumed run
    re-reaches step 16 and saves 'best' again over a kept copy; the end is bit for bit the
    uninterrupted run's."""
    whole = _fit(tmp_path / "whole")
    real_save = checkpoint.Checkpoints.save

    def save(self, which, state, meta):
        if which == "latest" and int(state.step) == 16:
            raise KeyboardInterrupt("killed")
        return real_save(self, which, state, meta)

    monkeypatch.setattr(checkpoint.Checkpoints, "save", save)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "cut")
    assert _listing(tmp_path / "cut") == {"best": ["16"], "latest": ["8"]}
    monkeypatch.undo()
    set_aside = []
    real_set_aside = checkpoint.Checkpoints._set_aside
    monkeypatch.setattr(checkpoint.Checkpoints, "_set_aside", lambda self, which, step: (
        set_aside.append((which, step)), real_set_aside(self, which, step)))
    resumed = _fit(tmp_path / "cut")
    assert set_aside == [("best", 16)]
    assert resumed["resumed_from_step"] == 8 and resumed["test"] == whole["test"]
    assert resumed["test_params"] == whole["test_params"] == "best"
    assert _listing(tmp_path / "cut") == {"best": ["16"], "latest": ["16"]}
    for which in ("best", "latest"):
        a = checkpoint.load_variables(str(tmp_path / "whole"), which)
        b = checkpoint.load_variables(str(tmp_path / "cut"), which)
        jax.tree.map(np.testing.assert_array_equal, a, b)


def test_results_say_which_parameters_the_test_splits_used(tmp_path):
    from jaxeq.train.loop import NO_VAL_PARAMS
    assert _fit(tmp_path / "val", epochs=1)["test_params"] == "best"
    r = _fit(tmp_path / "noval", epochs=1, **{"data.val_split": None})
    assert r["test_params"] == NO_VAL_PARAMS == "last (no validation split)"
    assert r["best_checkpoint"] is None


def test_validated_run_without_a_best_checkpoint_is_an_error(tmp_path):
    _fit(tmp_path, epochs=1)
    shutil.rmtree(tmp_path / "checkpoints" / "best")
    with pytest.raises(FileNotFoundError, match=r"best holds no checkpoint although the run "
                                                r"validates on 'val'"):
        _fit(tmp_path, epochs=1)  # finished: only the test splits are evaluated again
