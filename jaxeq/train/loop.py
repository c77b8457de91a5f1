"""``fit(config, workdir)``: the one training loop for every platform and experiment.

:func:`jaxeq.train.prepare.prepare` checks everything and compiles (every configuration error
surfaces before any compilation); then the latest checkpoint is restored if there is one, and
the run trains epoch by epoch: train steps, evaluation, the schedule's decisions, checkpoints.
Finally the test splits are evaluated with the best-validation parameters (the last state when
there is no validation split; the results' ``test_params`` says which).

Resume is exact: the checkpoint holds the state and the data position (epoch, batches
consumed); the shuffle order depends only on (seed, epoch) and ``start_batch`` skips ahead, so
a restarted run feeds the same batches to the same state and, on CPU, reproduces the
uninterrupted run bit for bit.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq.data import batches
from jaxeq.train import checkpoint as ckpt_lib
from jaxeq.train import config as cfg_lib
from jaxeq.train import mesh as mesh_lib
from jaxeq.train import reporting, schedule as sched_lib, state as state_lib
from jaxeq.train.prepare import Run, initial_variables, prepare
from jaxeq.train.prepare import check_workdir as _check_workdir  # noqa: F401 (re-exported)
from jaxeq.train.schedule import improves

__all__ = ["NO_VAL_PARAMS", "NonFiniteLossError", "fit", "improves", "initial_variables"]

# results["test_params"] of a run without a validation split (so without a 'best' checkpoint)
NO_VAL_PARAMS = "last (no validation split)"


class NonFiniteLossError(FloatingPointError):
    """A non-finite loss or gradient stopped the run (the last good checkpoint is kept)."""


def _fetch(tree):
    """Host copy of replicated arrays (works with any number of processes)."""
    return jax.tree.map(
        lambda a: np.asarray(a.addressable_data(0) if isinstance(a, jax.Array) else a), tree)


def fit(config, workdir: str, *, model=None, sources: dict | None = None) -> dict:
    """Train ``config`` in ``workdir`` (resuming from its checkpoints) and return the results.

    ``model`` (a flax module) and ``sources`` (``{split: source}``) bypass the registries
    ``jaxeq.models.get`` / ``jaxeq.data.get`` (tests, notebooks). Results: ``best_val``,
    ``test`` (per split, evaluated with the best-validation parameters), ``test_params``
    (which parameters ``test`` used: ``"best"``, or :data:`NO_VAL_PARAMS`), ``final_train``,
    ``epochs_run``, ``steps``, ``stop_reason``, ``final_lr``, device/process counts.
    """
    t_start = time.time()
    run, state = prepare(config, workdir, model, sources)
    ckpts = ckpt_lib.Checkpoints(run.workdir)
    loop = _Loop.start(run, ckpts, state, t_start)
    del state  # the loop holds the live state; a fresh one replaced by a restore is freed
    try:
        loop.train()
        final_lr = loop.current_lr()
        tests, test_params = loop.test()
        paths = {"best_checkpoint": ckpts.path("best"), "latest_checkpoint": ckpts.path("latest")}
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM where the caller turns it into one
        raise type(e)(loop.interrupted_message()).with_traceback(e.__traceback__) from None
    finally:
        loop.reporter.close()
        ckpts.close()
    progress, config = loop.progress, run.config
    results = {"model": config.model.name, "data": config.data.name,
               "best_val": progress.best, "test": tests, "test_params": test_params,
               "final_train": progress.final_train,
               "epochs_run": loop.epoch, "steps": loop.step, "stop_reason": progress.stop_reason,
               "final_lr": final_lr, "resumed_from_step": loop.resumed_from,
               "num_devices": jax.device_count(), "num_processes": jax.process_count(),
               **paths, "wall_time_s": time.time() - t_start}
    if run.is_main:
        reporting.write_json(os.path.join(run.workdir, "results.json"), results)
        loop.reporter.summary(results)
    return results


def _restore(run: Run, ckpts: ckpt_lib.Checkpoints, state):
    """``(state, progress, resumed_from_step)``: the latest checkpoint's, or the fresh
    ``state`` and progress.
    On resume, the records written after that checkpoint are dropped (they will be again)."""
    progress = ckpt_lib.Progress(sched_lib.Decisions.fresh(run.config.schedule),
                                 config=json.loads(cfg_lib.to_json(run.config)))
    restored = ckpts.restore("latest", state, run.info.replicated)
    if restored is None:
        return state, progress, None
    state, meta = restored
    progress = ckpt_lib.Progress.from_meta(meta)
    step = int(_fetch(state.step))
    if run.is_main:
        print(f"{run.workdir}: resumed from step {step} (epoch {progress.epoch}, batch "
              f"{progress.batch})", file=sys.stderr, flush=True)
        done_epochs = progress.epoch
        reporting.truncate_jsonl(os.path.join(run.workdir, "metrics.jsonl"),
                                 lambda r: r["epoch"] <= done_epochs)
        reporting.truncate_jsonl(os.path.join(run.workdir, "train_steps.jsonl"),
                                 lambda r: r["step"] <= step)
    return state, progress, step


@dataclasses.dataclass
class _Loop:
    """The epoch loop of one ``fit`` call and what changes during it: the state on device, its
    position (``epoch`` finished, ``batch`` of the next one consumed, ``step`` taken) and the
    checkpoint metadata (``progress``)."""
    run: Run
    ckpts: ckpt_lib.Checkpoints
    reporter: reporting.Reporter
    state: state_lib.TrainState
    progress: ckpt_lib.Progress
    epoch: int
    batch: int
    step: int
    resumed_from: int | None
    t_start: float
    t_log: float = 0.0          # time and step of the last train log line (for steps/s)
    steps_at_log: int = 0

    @classmethod
    def start(cls, run: Run, ckpts, state, t_start: float) -> _Loop:
        """Restored from the latest checkpoint, else from the fresh ``state``."""
        state, progress, resumed_from = _restore(run, ckpts, state)
        step = int(_fetch(state.step))
        c = run.config
        total_steps = c.epochs * run.steps_per_epoch
        if c.max_steps is not None:
            total_steps = min(total_steps, c.max_steps)
        reporter = reporting.Reporter(run.workdir, active=run.is_main, batch_size=c.batch_size,
                                      total_steps=total_steps, done_steps=step,
                                      progress=c.progress)
        return cls(run, ckpts, reporter, state, progress, progress.epoch, progress.batch, step,
                   resumed_from, t_start, time.time(), step)

    # ------------------------------------------------------------------------- helpers
    def current_lr(self, step: int | None = None) -> float:
        """The lr of step ``step`` (default: the next step to run)."""
        base = self.run.lr_fn(self.step if step is None else step)
        return float(base) * float(_fetch(self.state.lr_factor))

    def check_finite(self, metrics) -> None:
        bad = int(_fetch(metrics["nonfinite_step"]))
        if bad >= 0:
            last = self.ckpts.path("latest")
            n = self.run.steps_per_epoch
            raise NonFiniteLossError(
                f"non-finite loss or gradient at step {bad} (0-based global step; epoch "
                f"{bad // n}, batch {bad % n}); that update was not applied and the run stopped. "
                f"Last good checkpoint (kept): {last or 'none saved yet'}")

    def evaluate(self, state, source) -> dict:
        c, info = self.run.config, self.run.info
        m = jax.device_put(state_lib.zero_metrics(), info.replicated)
        for local in batches(source, c.eval_batch_size, shuffle=False, seed=c.seed, epoch=0,
                             process_index=jax.process_index(),
                             process_count=jax.process_count(), drop_remainder=False):
            m = self.run.eval_step(state, mesh_lib.global_batch(local, info, c.eval_batch_size),
                                   m)
        return state_lib.summarize(_fetch(m))

    def interrupted_message(self) -> str:
        """One line: where the run stopped, what is saved and how to go on."""
        saved = self.ckpts.path("latest")
        if saved is None:
            return (f"interrupted at step {self.step} of {self.run.workdir}, before its first "
                    f"checkpoint; work finished before it is kept: run the same command again "
                    f"to resume")
        p = self.progress
        return (f"interrupted at step {self.step}; saved: {saved} (epoch {p.epoch}, batch "
                f"{p.batch}); run the same command again to resume from there")

    def save_latest(self) -> None:
        self.check_finite(self.state.epoch_metrics)
        self.progress.epoch, self.progress.batch = self.epoch, self.batch
        self.ckpts.save("latest", self.state, self.progress.to_meta())

    def _zero(self, field: str) -> None:
        """Reset one of the state's metric accumulators."""
        zeros = jax.device_put(state_lib.zero_metrics(), self.run.info.replicated)
        self.state = self.state.replace(**{field: zeros})

    # ------------------------------------------------------------------------- the loop
    def train(self) -> None:
        """Epochs until the run is done (max epochs or steps, min lr, early stopping)."""
        c, progress = self.run.config, self.progress
        while not progress.done:
            if self.epoch >= c.epochs or (c.max_steps and self.step >= c.max_steps):
                progress.stop_reason = progress.stop_reason or "epochs"
                progress.done = True
                self.save_latest()
                break
            lr_epoch = self.current_lr(self.epoch * self.run.steps_per_epoch)
            hit_max = self.train_epoch()
            self.end_epoch(lr_epoch, hit_max)

    def train_epoch(self) -> bool:
        """The rest of the current epoch; True when it stopped early at ``max_steps``."""
        run, c = self.run, self.run.config
        it = batches(run.train_source, c.batch_size, shuffle=c.data.shuffle, seed=c.seed,
                     epoch=self.epoch, process_index=jax.process_index(),
                     process_count=jax.process_count(), drop_remainder=True,
                     start_batch=self.batch)
        for local in it:  # jaxeq.data.batches prefetches on a thread
            self.state = run.train_step(self.state,
                                        mesh_lib.global_batch(local, run.info, c.batch_size))
            self.step += 1
            self.batch += 1
            self.reporter.advance()
            if self.step % c.log_every_steps == 0:
                self.log_train()
            if c.max_steps and self.step >= c.max_steps:
                return True
            if (c.checkpoint_every_steps and self.step % c.checkpoint_every_steps == 0
                    and self.batch < run.steps_per_epoch):  # epoch ends save anyway
                self.save_latest()
        return False

    def log_train(self) -> None:
        """One train_steps.jsonl line (means since the last one), then reset its accumulator."""
        logged = _fetch(self.state.log_metrics)
        self.check_finite(logged)
        now = time.time()
        rate = (self.step - self.steps_at_log) / max(now - self.t_log, 1e-9)
        self.reporter.train_log({"step": self.step, "epoch": self.epoch,
                                 "lr": self.current_lr(self.step - 1),
                                 **state_lib.summarize(logged), "steps_per_s": rate,
                                 "images_per_s": rate * self.run.config.batch_size})
        self.t_log, self.steps_at_log = now, self.step
        self._zero("log_metrics")

    def end_epoch(self, lr_epoch: float, hit_max: bool) -> None:
        """Evaluate, decide, write the epoch's metrics line and checkpoint."""
        c, progress = self.run.config, self.progress
        self.check_finite(self.state.epoch_metrics)
        train_metrics = state_lib.summarize(_fetch(self.state.epoch_metrics))
        record = {"epoch": self.epoch + 1, "step": self.step, "lr": lr_epoch,
                  "train_loss": train_metrics["loss"],
                  "train_accuracy": train_metrics["accuracy"]}
        progress.final_train = train_metrics
        if self.run.val_source is not None:
            self.validate(record)
        record["time_s"] = time.time() - self.t_start
        self.epoch += 1
        self.batch = 0
        if hit_max:
            progress.stop_reason = progress.stop_reason or "max_steps"
        if progress.stop_reason or self.epoch >= c.epochs:
            progress.stop_reason = progress.stop_reason or "epochs"
            progress.done = True
        self._zero("epoch_metrics")
        self.reporter.eval_record(record)
        self.save_latest()

    def validate(self, record: dict) -> None:
        """Validation metrics into ``record``; the best checkpoint; plateau and early stop."""
        c, progress = self.run.config, self.progress
        val = self.evaluate(self.state, self.run.val_source)
        record.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        if improves(progress.best, val, c.best_by):
            progress.best = {"loss": val["loss"], "accuracy": val["accuracy"],
                             "epoch": self.epoch + 1, "step": self.step}
            self.ckpts.save("best", self.state, progress.to_meta())
        reduce_lr, stop = progress.decisions.update(val["loss"], c.schedule,
                                                    c.early_stopping_patience)
        if reduce_lr:
            self.reduce_lr(record)
        if stop:
            progress.stop_reason = progress.stop_reason or "early_stopping"

    def reduce_lr(self, record: dict) -> None:
        """Reduce-on-plateau: scale the lr factor (optionally back at the best parameters);
        stop once the lr reaches ``schedule.min_lr``."""
        sched, rep = self.run.config.schedule, self.run.info.replicated
        factor = float(_fetch(self.state.lr_factor)) * sched.factor
        if sched.reload_best and self.ckpts.path("best"):
            best, _ = self.ckpts.restore("best", self.state, rep)
            self.state = self.state.replace(params=best.params, batch_stats=best.batch_stats,
                                            opt_state=best.opt_state)
        self.state = self.state.replace(
            lr_factor=jax.device_put(jnp.asarray(factor, jnp.float32), rep))
        record["lr_reduced_to"] = self.current_lr()
        if self.current_lr() <= sched.min_lr:
            self.progress.stop_reason = "min_lr"

    def test(self) -> tuple[dict, str]:
        """(metrics per test split, which parameters gave them): the best-validation ones, or
        the last state when the run has no validation split. A run that validates but has no
        'best' checkpoint on disk is an error, not a quiet fallback to the last state."""
        splits = self.run.config.data.test_splits
        if self.run.val_source is None:
            return self.evaluate_splits(self.state, splits), NO_VAL_PARAMS
        if not splits:
            return {}, "best"
        restored = self.ckpts.restore("best", self.state, self.run.info.replicated)
        if restored is None:
            raise FileNotFoundError(
                f"{self.ckpts.root}/best holds no checkpoint although the run validates on "
                f"{self.run.config.data.val_split!r}: the test splits {list(splits)} need the "
                f"best-validation parameters")
        return self.evaluate_splits(restored[0], splits), "best"

    def evaluate_splits(self, state, splits) -> dict:
        return {s: self.evaluate(state, self.run.sources[s]) for s in splits}
