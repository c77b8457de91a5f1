"""Checkpoints with orbax: 'latest' (for resume) and 'best' (by validation loss, or by
validation top-1 with ``best_by='val_accuracy'``).

Each checkpoint holds the whole train state (parameters, optimizer state, BatchNorm
statistics, RNG key, lr factor, metric accumulators, step) and JSON metadata: the data
position (``epoch``, ``batch`` = batches of that epoch already consumed), the schedule and
early-stopping state, the best validation result so far and the config. Orbax writes into a
temporary directory and renames it when complete, so a run killed at any instant leaves either
the previous checkpoint or the new one, never a half-written one.

Layout: ``workdir/checkpoints/latest/<step>/`` and ``workdir/checkpoints/best/<step>/``, one
kept in each; orbax removes the previous step only after the new one is committed. A resumed
run that re-reaches a step already on disk (e.g. 'best' written just before a kill, 'latest'
not) cannot write over it in place, so the old copy is first moved to
``workdir/checkpoints/<which>.previous/<step>/`` (a rename) and removed only once the new copy
is committed: a kill at any instant leaves a complete copy of that step in one of the two
folders. :meth:`Checkpoints.restore`, :meth:`Checkpoints.path` and :func:`load_variables`
take the newest complete step of both (the main folder on a tie).

Writes are synchronous: the state is donated to the next train step, so it must be on disk (or
copied) before that step runs, and the time is small next to an epoch. A Ctrl-C or SIGTERM
that arrives during a write is held until the write is complete, so an interrupted run leaves
no ``*.orbax-checkpoint-tmp*`` folder behind.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
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


WHICH = ("latest", "best")
ASIDE = ".previous"  # suffix of the folder holding a re-reached step's old copy during its save
DELETING = ".deleting"  # suffix of a folder being deleted


def _manager(directory: str, read_only: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=1, create=not read_only, enable_async_checkpointing=False,
        cleanup_tmp_directories=not read_only, read_only=read_only)
    return ocp.CheckpointManager(directory, options=options, item_handlers={
        "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})


def _latest_step(directory: str, mgr: ocp.CheckpointManager | None = None) -> int | None:
    """The newest complete step in ``directory`` (through ``mgr`` when it is open)."""
    if mgr is not None:
        return mgr.latest_step()
    if not os.path.isdir(directory):
        return None
    mgr = _manager(directory, read_only=True)
    try:
        return mgr.latest_step()
    finally:
        mgr.close()


def _newest(directory: str, main: ocp.CheckpointManager | None = None
            ) -> tuple[str, int] | None:
    """(folder, step) of the newest complete step in ``directory`` or its ``.previous`` folder
    (the main one on a tie); None if neither holds one. ``main``: the open manager of
    ``directory``."""
    found = [(d, step) for d, step in ((directory, _latest_step(directory, main)),
                                       (directory + ASIDE, _latest_step(directory + ASIDE)))
             if step is not None]
    return max(found, key=lambda f: f[1]) if found else None  # max keeps the first on a tie


def _remove_dir(path: str) -> None:
    """Rename, then delete: a kill mid-delete leaves no half-deleted step under a step name."""
    if os.path.isdir(path):
        doomed = path + DELETING
        shutil.rmtree(doomed, ignore_errors=True)
        os.rename(path, doomed)
        shutil.rmtree(doomed)


def _barrier(name: str) -> None:
    ocp.multihost.sync_global_processes(name)


class Checkpoints:
    """The two managers of one workdir."""

    def __init__(self, workdir: str):
        self.root = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.latest = _manager(os.path.join(self.root, "latest"))
        self.best = _manager(os.path.join(self.root, "best"))
        # Whether a '.previous' folder may exist (the same answer on every process, so that
        # all of them take the barrier that follows its removal).
        self._aside = {w: os.path.isdir(self._dir(w) + ASIDE) for w in WHICH}
        if ocp.multihost.is_primary_host(0):  # what a kill mid-delete left: no step, never read
            for w in WHICH:
                shutil.rmtree(self._dir(w) + ASIDE + DELETING, ignore_errors=True)
        self._saves = 0  # numbers the barriers (each one needs a fresh name)

    def _dir(self, which: str) -> str:
        return os.path.join(self.root, which)

    def save(self, which: str, state, meta: dict) -> str:
        """Save (all processes must call; orbax lets only the primary write shared files)."""
        mgr = getattr(self, which)
        step = int(np.asarray(state.step.addressable_data(0)))
        self._saves += 1
        with hold_interrupts():
            if step in mgr.all_steps():
                self._set_aside(which, step)
            mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave(meta)), force=True)
            mgr.wait_until_finished()
            if self._aside[which]:
                self._drop_aside(which)
        return self.path(which, step)

    def _set_aside(self, which: str, step: int) -> None:
        """Move the kept copy of ``step`` out of orbax's way; it stays until the new one is
        committed."""
        if ocp.multihost.is_primary_host(0):
            aside = os.path.join(self._dir(which) + ASIDE, str(step))
            os.makedirs(os.path.dirname(aside), exist_ok=True)
            _remove_dir(aside)  # an older copy of this step; the main folder's is complete
            os.rename(os.path.join(self._dir(which), str(step)), aside)
        _barrier(f"jaxeq_set_aside_{which}_{self._saves}")
        getattr(self, which).reload()
        self._aside[which] = True

    def _drop_aside(self, which: str) -> None:
        if ocp.multihost.is_primary_host(0):
            _remove_dir(self._dir(which) + ASIDE)
        _barrier(f"jaxeq_drop_aside_{which}_{self._saves}")
        self._aside[which] = False

    def path(self, which: str, step: int | None = None) -> str | None:
        """The folder of ``step`` (default: the newest complete step) of ``which``."""
        if step is not None:
            return os.path.join(self._dir(which), str(step))
        found = _newest(self._dir(which), getattr(self, which))
        return None if found is None else os.path.join(found[0], str(found[1]))

    def restore(self, which: str, like_state, sharding) -> tuple | None:
        """(state, meta) of the newest complete step, arrays placed with ``sharding``; None
        if none."""
        found = _newest(self._dir(which), getattr(self, which))
        if found is None:
            return None
        directory, step = found
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), like_state)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                  meta=ocp.args.JsonRestore())
        if directory == self._dir(which):
            out = getattr(self, which).restore(step, args=args)
        else:  # the old copy of a step whose re-save did not complete
            mgr = _manager(directory, read_only=True)
            try:
                out = mgr.restore(step, args=args)
            finally:
                mgr.close()
        return out["state"], out["meta"]

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def has_checkpoint(workdir: str) -> bool:
    root = os.path.join(workdir, "checkpoints")
    for which in WHICH:
        for d in (os.path.join(root, which), os.path.join(root, which + ASIDE)):
            if os.path.isdir(d) and any(n.isdigit() for n in os.listdir(d)):
                return True
    return False


def load_variables(workdir: str, which: str = "best") -> dict:
    """``{"params", "batch_stats"}`` as numpy arrays from a finished or running workdir (for
    analysis after training; single process). ``which``: 'best' or 'latest'."""
    if which not in ("best", "latest"):
        raise ValueError(f"which={which!r} is not one of ['best', 'latest']")
    found = _newest(os.path.join(os.path.abspath(workdir), "checkpoints", which))
    if found is None:
        raise FileNotFoundError(f"no {which!r} checkpoint in {workdir}")
    directory, step = found
    mgr = _manager(directory, read_only=True)
    meta = mgr.item_metadata(step)["state"]
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu), meta)
    state = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    state = state["state"]
    mgr.close()
    return {"params": jax.tree.map(np.asarray, state["params"]),
            "batch_stats": jax.tree.map(np.asarray, state.get("batch_stats", {}) or {}),
            "step": int(np.asarray(state["step"]))}
