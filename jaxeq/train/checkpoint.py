"""Checkpoints with orbax: 'latest' (for resume) and 'best' (by validation loss, or by
validation top-1 with ``best_by='val_accuracy'``).

Each checkpoint holds the whole train state (parameters, optimizer state, BatchNorm
statistics, RNG key, lr factor, metric accumulators, step) and JSON metadata: the data
position (``epoch``, ``batch`` = batches of that epoch already consumed), the schedule and
early-stopping state, the best validation result so far and the config. Orbax writes into a
temporary directory and renames it when complete, so a run killed at any instant leaves either
the previous checkpoint or the new one, never a half-written one.

Layout: ``workdir/checkpoints/latest/<step>/`` and ``workdir/checkpoints/best/<step>/``, one
kept in each. Writes are synchronous: the state is donated to the next train step, so it must
be on disk (or copied) before that step runs, and the time is small next to an epoch. A Ctrl-C
or SIGTERM that arrives during a write is held until the write is complete, so an interrupted
run leaves no ``*.orbax-checkpoint-tmp*`` folder behind.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxeq.train.schedule import Decisions


@dataclasses.dataclass
class Progress:
    """A run's checkpoint metadata. ``epoch`` and ``batch`` are the data position of the last
    'latest' checkpoint (epochs finished, batches of the next epoch consumed); the rest is
    current: the plateau and early-stopping state, the best validation result so far, the
    last epoch's train metrics, whether and why the run stopped, and the run's config."""
    decisions: Decisions
    config: dict
    epoch: int = 0
    batch: int = 0
    best: dict | None = None
    done: bool = False
    stop_reason: str | None = None
    final_train: dict | None = None

    def to_meta(self) -> dict:
        """The JSON written beside the state."""
        return {"epoch": self.epoch, "batch": self.batch, **self.decisions.to_meta(),
                "best": self.best, "done": self.done, "stop_reason": self.stop_reason,
                "final_train": self.final_train, "config": self.config}

    @classmethod
    def from_meta(cls, meta: dict) -> Progress:
        fields = ("epoch", "batch", "best", "done", "stop_reason", "final_train", "config")
        return cls(decisions=Decisions.from_meta(meta), **{k: meta[k] for k in fields})


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def hold_interrupts():
    """Delay SIGINT and SIGTERM until the block is done, then deliver the first one that came
    to its usual handler. Only the main thread can install handlers, and one installed outside
    Python cannot be put back: then a no-op."""
    if threading.current_thread() is not threading.main_thread() \
            or any(signal.getsignal(s) is None for s in HELD_SIGNALS):
        yield
        return
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum))
                for s in HELD_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])


def _manager(directory: str, read_only: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=1, create=not read_only, enable_async_checkpointing=False,
        cleanup_tmp_directories=not read_only, read_only=read_only)
    return ocp.CheckpointManager(directory, options=options, item_handlers={
        "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})


class Checkpoints:
    """The two managers of one workdir."""

    def __init__(self, workdir: str):
        self.root = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.latest = _manager(os.path.join(self.root, "latest"))
        self.best = _manager(os.path.join(self.root, "best"))

    def save(self, which: str, state, meta: dict) -> str:
        """Save (all processes must call; orbax lets only the primary write shared files)."""
        mgr = getattr(self, which)
        step = int(np.asarray(state.step.addressable_data(0)))
        with hold_interrupts():
            if step in mgr.all_steps():
                # A resumed run re-reaching a step saved before the crash (e.g. 'best' written
                # just before the kill, 'latest' not): the state is the same, replace it.
                mgr.delete(step)
            mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave(meta)), force=True)
            mgr.wait_until_finished()
        return self.path(which, step)

    def path(self, which: str, step: int | None = None) -> str | None:
        step = getattr(self, which).latest_step() if step is None else step
        return None if step is None else os.path.join(self.root, which, str(step))

    def restore(self, which: str, like_state, sharding) -> tuple | None:
        """(state, meta) of the kept checkpoint, arrays placed with ``sharding``; None if none."""
        mgr = getattr(self, which)
        step = mgr.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), like_state)
        out = mgr.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return out["state"], out["meta"]

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def has_checkpoint(workdir: str) -> bool:
    root = os.path.join(workdir, "checkpoints")
    for which in ("latest", "best"):
        d = os.path.join(root, which)
        if os.path.isdir(d) and any(n.isdigit() for n in os.listdir(d)):
            return True
    return False


def load_variables(workdir: str, which: str = "best") -> dict:
    """``{"params", "batch_stats"}`` as numpy arrays from a finished or running workdir (for
    analysis after training; single process). ``which``: 'best' or 'latest'."""
    if which not in ("best", "latest"):
        raise ValueError(f"which={which!r} is not one of ['best', 'latest']")
    mgr = _manager(os.path.join(os.path.abspath(workdir), "checkpoints", which), read_only=True)
    step = mgr.latest_step()
    if step is None:
        raise FileNotFoundError(f"no {which!r} checkpoint in {workdir}")
    meta = mgr.item_metadata(step)["state"]
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu), meta)
    state = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    state = state["state"]
    mgr.close()
    return {"params": jax.tree.map(np.asarray, state["params"]),
            "batch_stats": jax.tree.map(np.asarray, state.get("batch_stats", {}) or {}),
            "step": int(np.asarray(state["step"]))}
