"""What a run shows and writes: JSON lines, a progress bar, a summary table, TensorBoard.

Only process 0 reports (every method is a no-op elsewhere). Files in the workdir:
``metrics.jsonl`` (one object per evaluation, i.e. per epoch), ``train_steps.jsonl`` (one
object per ``log_every_steps`` steps) and, when the ``tensorboard`` package is installed,
TensorBoard event files under ``tensorboard/``. The rich progress bar (steps/s, images/s, ETA)
appears only on a terminal unless ``progress='on'``; the summary table is printed at the end.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from jaxeq import atomic


def _clean(obj):
    """JSON-safe: non-finite floats become strings (JSON has no inf/nan)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_jsonl(path: str, keep) -> None:
    """Drop records a resumed run will write again (those past the restored checkpoint)."""
    if os.path.exists(path):
        rows = [r for r in read_jsonl(path) if keep(r)]
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        os.replace(tmp, path)


def write_json(path: str, obj) -> None:
    """Atomic JSON write (temp file + rename)."""
    atomic.write_json(path, _clean(obj), indent=1, sort_keys=True)


class _Rate(ProgressColumn):
    """steps/s and images/s from rich's own speed estimate."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size

    def render(self, task):
        if not task.speed:
            return Text("- steps/s")
        return Text(f"{task.speed:.1f} steps/s {task.speed * self.batch_size:.0f} img/s")


class Reporter:
    def __init__(self, workdir: str, *, active: bool, batch_size: int, total_steps: int,
                 done_steps: int, progress: str = "auto"):
        self.active = active
        self.workdir = workdir
        self.console = Console()
        self.progress = None
        self.tb = None
        if not active:
            return
        show = progress == "on" or (progress == "auto" and self.console.is_terminal)
        if show:
            self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                     _Rate(batch_size), TextColumn("{task.fields[info]}"),
                                     TimeRemainingColumn(), console=self.console)
            self.task = self.progress.add_task("train", total=total_steps, completed=done_steps,
                                               info="")
            self.progress.start()
        if importlib.util.find_spec("tensorboard") is not None:
            try:  # optional: any SummaryWriter with add_scalar
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except Exception:  # noqa: BLE001 - TensorBoard is a nicety, never a failure
                self.tb = None

    def advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def _append(self, name: str, record: dict) -> None:
        with open(os.path.join(self.workdir, name), "a") as f:
            f.write(json.dumps(_clean(record)) + "\n")

    def _scalars(self, prefix: str, record: dict, step: int) -> None:
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def train_log(self, record: dict) -> None:
        if not self.active:
            return
        self._append("train_steps.jsonl", record)
        self._scalars("train", record, record["step"])
        if self.progress is not None:
            self.progress.update(self.task, info=f"loss {record['loss']:.4f}")

    def eval_record(self, record: dict) -> None:
        if not self.active:
            return
        self._append("metrics.jsonl", record)
        self._scalars("epoch", record, record["step"])

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None

    def summary(self, results: dict) -> None:
        if not self.active:
            return
        table = Table(title=f"jaxeq.train: {results['model']} on {results['data']}")
        table.add_column("split")
        table.add_column("loss", justify="right")
        table.add_column("accuracy %", justify="right")
        rows = []
        if results.get("final_train"):
            rows.append(("train (last epoch)", results["final_train"]))
        if results.get("best_val"):
            rows.append((f"val (best, epoch {results['best_val']['epoch']})", results["best_val"]))
        rows += [(f"test: {k}", v) for k, v in results.get("test", {}).items()]
        for name, m in rows:
            table.add_row(name, f"{m['loss']:.4f}", f"{100 * m['accuracy']:.2f}")
        table.caption = (f"{results['epochs_run']} epochs, {results['steps']} steps, stop: "
                         f"{results['stop_reason']}, final lr {results['final_lr']:.3g}, "
                         f"{results['num_devices']} device(s) x {results['num_processes']} "
                         f"process(es)")
        self.console.print(table)
