"""``jaxeq probe``: layer-by-layer equivariance of a model (or toy net) per padding, side by side.

Example::

    jaxeq probe --model resnet18 --variants same:zeros full:zeros same:circular \\
        --size 64 --max-shift 8 --action translate --out probe_out

prints one rich table (a column group per padding/fill variant) and writes into ``--out``:
``error_vs_depth.png`` (max error per layer, one line per variant), ``error_map.png``
(per-pixel error maps of a few layers per variant) and ``probe.json`` (all rows, written
atomically). An existing ``probe.json`` of other settings is not replaced unless
``--overwrite``: the command stops before probing, naming the settings that differ.

The input is seeded random content: for ``--action translate`` it sits on a zero canvas with a
zero margin of ``--margin`` pixels (default max-shift + 4, so translations lose nothing), for
``roll`` it fills the image. ``--bn-shift S`` adds N(0, S^2) to every BatchNorm bias and
running mean, the way training makes them non-zero, to show where zero padding then re-creates
a border.

``--worst-case`` adds, per variant, the worst-case shift metrics of the model's output over
every shift in ``[-m, m]^2`` (``--worst-case-shift m``, default 15: the 31x31 grid), with the
unshifted predictions as labels (:mod:`jaxeq.analysis.worst_case`): the worst-case
consistency, the consistency, MAC and ``flip_map.png``; they are stored in probe.json under
``worst_case``.

``--position`` adds, per variant at its seeded initialisation, the position information of the
model's top-level layers (:func:`jaxeq.analysis.probe.position_variant`, Islam et al. 2020):
SPC / MAE of a linear readout of content-free position maps on held-out photos, black, white
and noise inputs, each layer's border reach, and ``position.png``; stored under ``position``.

``--padding-report MODEL`` prints, instead of the layer table, the padding report of a
registry model per variant (:mod:`jaxeq.analysis.padding_report`): every windowed layer's
``(lo, hi)`` pads, the trailing pixels its windows never read, whether the pads are used
unevenly, the input sizes in ``--size-range`` without uneven layers, and the spatial-bias maps
(response to a constant ``--bias-value`` input); it writes ``padding_report.json`` (atomic,
refused for other settings as probe.json), ``padding_report.md`` and ``padding_bias.png``.

``--action`` takes any action of :data:`jaxeq.analysis.engine.ACTIONS`.

The probes themselves are :mod:`jaxeq.analysis.probe`; tables and figures
:mod:`jaxeq.analysis.probe_render`.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from jaxeq import _checks, atomic
from jaxeq.analysis.probe import (TOY_NETS, lie_variant, padding_report_variant, position_variant,
                                  probe_input, probe_variant, questions_table,
                                  worst_case_variant)
from jaxeq.analysis.probe_render import (padding_markdown, padding_summary, plot_bias_maps,
                                         plot_error_maps, plot_error_vs_depth, plot_flip_maps,
                                         plot_position, render_padding_table, render_position,
                                         render_questions, render_table, render_worst_case)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="toy_cnn",
                        help=f"a registry model (jaxeq.models.names()) or a toy chain net "
                             f"{TOY_NETS} (default toy_cnn)")
    parser.add_argument("--padding", nargs="+", default=["same", "full"],
                        choices=["valid", "same", "full"], help="paddings to compare")
    parser.add_argument("--fill", nargs="+", default=["zeros"],
                        choices=["zeros", "circular", "reflect", "replicate"],
                        help="fills to compare (every padding x fill pair is probed)")
    parser.add_argument("--variants", nargs="+", metavar="PADDING:FILL",
                        help="explicit variants, e.g. same:zeros full:zeros same:circular "
                             "(overrides --padding/--fill)")
    parser.add_argument("--size", type=int, default=64, help="input height = width")
    parser.add_argument("--frames", type=int, default=16,
                        help="input length T of 3-D (video) models such as resnet3d_18; their "
                             "shift grid is 3-D, (2*max-shift/step + 1)^3 shifts")
    parser.add_argument("--batch", type=int, default=1, help="images per shift")
    parser.add_argument("--max-shift", type=int, default=8, help="shifts in [-m, m]^2")
    parser.add_argument("--step", type=int, default=1, help="shift grid step")
    from jaxeq.analysis.engine import ACTIONS

    parser.add_argument("--action", default="translate", choices=list(ACTIONS),
                        help="the shift action (jaxeq.analysis.engine.ACTIONS)")
    parser.add_argument("--margin", type=int, default=None,
                        help="zero margin of the translate input (default max-shift + 4: a "
                             "valid stride-2 pool can drop the last row of an odd map, so "
                             "content must stay a few pixels off the edge)")
    parser.add_argument("--border", type=int, default=1,
                        help="border width in each layer's own pixels (interior vs border)")
    parser.add_argument("--bn-shift", type=float, default=0.0,
                        help="std of noise added to BatchNorm biases and running means")
    parser.add_argument("--chunk", type=int, default=16,
                        help="shifts per vmapped chunk (memory); 0 = all at once")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input content")
    parser.add_argument("--questions", action="store_true",
                        help="print the 'which layers are equivariant, to which shifts?' table "
                             "(single ops and small nets) instead of a model's layer table")
    parser.add_argument("--worst-case", action="store_true",
                        help="also measure worst-case shift metrics of each variant's output "
                             "(Michaeli et al. 2023; the unshifted predictions as labels): "
                             "worst-case consistency, consistency, MAC, and flip_map.png")
    parser.add_argument("--worst-case-shift", type=int, default=15,
                        help="worst-case grid: every shift in [-m, m]^2 with --step (default "
                             "15: the 31x31 grid)")
    parser.add_argument("--lie", action="store_true",
                        help="also attribute each variant's Lie derivative of translation "
                             "(Gruver et al. 2023) to its layers: the share of each segment, "
                             "summing to 1, and the network's norm (--action: roll, translate "
                             "or fractional)")
    parser.add_argument("--position", action="store_true",
                        help="also measure the position information of each variant at init "
                             "(Islam et al. 2020): a per-pixel linear readout fitted on photo "
                             "crops predicts content-free position maps from the top-level "
                             "layers' features; SPC / MAE on held-out photos, black, white and "
                             "noise, and each layer's border reach (position.png)")
    parser.add_argument("--padding-report", metavar="MODEL",
                        help="print the padding report of a registry model instead of the layer "
                             "table: per windowed layer its (lo, hi) pads, uneven pads, the input "
                             "sizes without any, and spatial-bias maps (padding_report.json, "
                             "padding_report.md, padding_bias.png)")
    parser.add_argument("--bias-value", type=float, default=1.0,
                        help="constant input of the spatial-bias maps (0 shows only what "
                             "biases and BN shifts add: nothing at init without --bn-shift)")
    parser.add_argument("--size-range", type=int, nargs=2, metavar=("LO", "HI"),
                        help="input sizes searched for even padding (default --size to --size "
                             "+ 31: one period of a net of total stride 32)")
    parser.add_argument("--out", default="probe_out", help="folder for the PNGs and JSON")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUT/probe.json of other settings (without "
                             "this the command refuses it; one of the same settings is replaced)")


# arguments that do not change what probe.json holds (--chunk only trades memory for time)
NOT_SETTINGS = ("debug", "command", "out", "overwrite", "questions", "chunk")


def settings(args) -> dict:
    """The arguments that define probe.json's content, as JSON stores them."""
    return json.loads(json.dumps({k: v for k, v in vars(args).items() if k not in NOT_SETTINGS},
                                 default=str))


def check_target(path: str, ours: dict, overwrite: bool) -> None:
    """Refuse to replace an existing probe.json written with other settings."""
    if overwrite or not os.path.exists(path):
        return
    try:
        with open(path) as fh:
            theirs = json.load(fh).get("args")
    except (OSError, ValueError, AttributeError):
        theirs = None
    if not isinstance(theirs, dict):
        raise ValueError(f"{path} exists and is not a probe.json with recorded settings; pass "
                         f"--overwrite to replace it, or choose another --out")
    differ = {k: (theirs.get(k), v) for k, v in ours.items() if theirs.get(k) != v}
    if differ:
        shown = ", ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in differ.items())
        raise ValueError(f"{path} holds a probe of other settings ({shown}); pass --overwrite "
                         f"to replace it, or choose another --out")


def _variants(args) -> list[tuple[str, str]]:
    if args.variants:
        out = []
        for v in args.variants:
            padding, _, fill = v.partition(":")
            if padding not in ("valid", "same", "full") or fill not in (
                    "zeros", "circular", "reflect", "replicate"):
                raise ValueError(f"--variants entries must be PADDING:FILL with padding in "
                                 f"(valid, same, full) and fill in (zeros, circular, reflect, "
                                 f"replicate), got {v!r}")
            out.append((padding, fill))
        return out
    return [(p, f) for p in args.padding for f in args.fill]


def _check_numbers(args) -> None:
    """The integer options, before anything is built (--batch 0 would end in StopIteration)."""
    for option, minimum in (("batch", 1), ("size", 1), ("frames", 1), ("max_shift", 0),
                            ("step", 1), ("border", 0), ("chunk", 0), ("worst_case_shift", 0)):
        _checks.int_at_least(f"--{option.replace('_', '-')}", getattr(args, option), minimum)
    _checks.int_at_least("--margin", args.margin, 0, allow_none=True)
    if args.size_range is not None:
        lo, hi = args.size_range
        if not 1 <= lo <= hi:
            raise ValueError(f"--size-range must be LO HI with 1 <= LO <= HI, got {lo} {hi}")


def main(args: argparse.Namespace) -> int:
    import jaxeq as jq
    from rich.console import Console

    _check_numbers(args)

    if args.questions:
        size = max(args.size, 40)
        Console(width=200).print(render_questions(questions_table(size, args.seed), size))
        return 0

    variants = _variants(args)
    if args.padding_report:
        return _padding_report(args, variants)
    json_path = os.path.join(args.out, "probe.json")
    check_target(json_path, settings(args), args.overwrite)
    channels, ndim, spatial = _input_layout(args.model, args)
    if args.position and (ndim != 2 or channels != 3):
        raise ValueError(f"--position needs a 2-D model of RGB images (its readout is fitted on "
                         f"photographs); --model {args.model} takes {ndim}-D inputs with "
                         f"{channels} channel(s)")
    margin = args.max_shift + 4 if args.margin is None else args.margin
    x = probe_input(spatial, channels, args.batch, args.action, margin, args.seed)
    shifts = jq.shift_grid(args.max_shift, ndim=ndim, step=args.step)
    chunk = args.chunk or None
    results = {}
    for padding, fill in variants:
        results[f"{padding}-{fill}"] = probe_variant(
            args.model, padding, fill, x, shifts, action=args.action, border=args.border,
            bn_shift=args.bn_shift, chunk=chunk, seed=args.seed)

    title = (f"{args.model}: {args.action} equivariance error per layer (relative L2; "
             f"max over the n shifts in each layer's stride subgroup, interior/border: mean; "
             f"{len(shifts)} shifts in [-{args.max_shift}, {args.max_shift}]^{ndim} step "
             f"{args.step}, {'x'.join(map(str, spatial))}"
             f"{f', zero margin {margin}' if args.action == 'translate' else ''}, "
             f"border {args.border} px"
             f"{f', BN shift {args.bn_shift}' if args.bn_shift else ''})")
    Console(width=max(120, 60 + 48 * len(results))).print(render_table(results, title))

    os.makedirs(args.out, exist_ok=True)
    plot_error_vs_depth(results, os.path.join(args.out, "error_vs_depth.png"), title)
    plot_error_maps(results, os.path.join(args.out, "error_map.png"), title)
    serial = {name: [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()
                      if k != "error_map"} for r in rows] for name, rows in results.items()}
    record = {"args": vars(args), "title": title, "variants": serial}
    written = ["error_vs_depth.png", "error_map.png"]
    if args.worst_case:
        record["worst_case"] = _worst_case(args, variants, x, ndim)
        written.append("flip_map.png")
    if args.lie:
        record["lie"] = _lie(args, variants, x)
    if args.position:
        record["position"] = _position(args, variants)
        written.append("position.png")
    atomic.write_json(json_path, record, indent=1, default=str)
    print(f"wrote {args.out}/{', '.join(written + ['probe.json'])}")
    return 0


def _input_layout(model: str, args) -> tuple[int, int, tuple[int, ...]]:
    """(channels, spatial ndim, spatial sizes) of the probe input of ``model``."""
    if model in TOY_NETS:
        channels, ndim = 3, 2
    else:
        from jaxeq import models

        if model not in models.names():
            raise ValueError(f"--model must be one of {list(TOY_NETS) + models.names()}, "
                             f"got {model!r}")
        shape = models.example_input_shape(model)
        channels, ndim = shape[-1], len(shape) - 2
    spatial = (args.size,) * 2 if ndim == 2 else (args.frames,) + (args.size,) * (ndim - 1)
    return channels, ndim, spatial


def _worst_case(args, variants, x, ndim) -> dict:
    """Worst-case metrics per variant: printed, plotted (flip_map.png), returned for JSON."""
    import jaxeq as jq
    from rich.console import Console

    shifts = jq.shift_grid(args.worst_case_shift, ndim=ndim, step=args.step)
    out = {f"{p}-{f}": worst_case_variant(args.model, p, f, x, shifts, action=args.action,
                                          bn_shift=args.bn_shift, chunk=args.chunk or None,
                                          seed=args.seed)
           for p, f in variants}
    title = (f"{args.model}: worst case over {len(shifts)} {args.action} shifts in "
             f"[-{args.worst_case_shift}, {args.worst_case_shift}]^{ndim} step {args.step}, "
             f"{x.shape[0]} image(s) {'x'.join(map(str, x.shape[1:-1]))} (labels: the "
             f"unshifted predictions)")
    Console(width=140).print(render_worst_case(out, title))
    plot_flip_maps(out, os.path.join(args.out, "flip_map.png"), title)
    return {"title": title, "variants": out}


def _lie(args, variants, x) -> dict:
    """Lie-derivative shares per layer and variant: printed as one table, returned for JSON."""
    from rich.console import Console
    from rich.table import Table

    out = {f"{p}-{f}": lie_variant(args.model, p, f, x, action=args.action,
                                   bn_shift=args.bn_shift, seed=args.seed) for p, f in variants}
    title = (f"{args.model}: share of the Lie derivative of translation ({args.action}) per "
             f"segment ending at each layer; last row: the network's norm (mean over images)")
    table = Table(title=title)
    table.add_column("layer")
    for name in out:
        table.add_column(name, justify="right")
    first = next(iter(out.values()))
    for i, row in enumerate(first):
        total = row["path"] == "(total)"
        table.add_row(row["path"], *[f"{rows[i]['norm' if total else 'share']:.4g}"
                                     for rows in out.values()])
    Console(width=max(100, 40 + 16 * len(out))).print(table)
    return {"title": title, "variants": out}


def _position(args, variants) -> dict:
    """Position information per variant at init: printed, plotted (position.png), returned."""
    from rich.console import Console

    out = {f"{p}-{f}": position_variant(args.model, p, f, args.size, bn_shift=args.bn_shift,
                                        seed=args.seed) for p, f in variants}
    title = (f"{args.model} at init, {args.size}x{args.size}: position information of the "
             f"concatenated top-level layers (per-pixel linear readout on photo crops; SPC "
             f"mean over 5 position targets, 1 = position fully readable) and each layer's "
             f"border reach (input px from the edge where the readout beats half of chance)")
    Console(width=max(140, 40 + 14 * len(next(iter(out.values()))["layers"]))).print(
        render_position(out, title))
    plot_position({name: r["summary"] for name, r in out.items()},
                  os.path.join(args.out, "position.png"), title)
    return {"title": title, "variants": out}


def _padding_report(args, variants) -> int:
    """``--padding-report MODEL``: tables, padding_report.{json,md} and padding_bias.png."""
    from rich.console import Console

    from jaxeq import models

    if args.padding_report not in models.names():
        raise ValueError(f"--padding-report must name a registry model {models.names()}, got "
                         f"{args.padding_report!r} (toy chain nets have no flax layers)")
    json_path = os.path.join(args.out, "padding_report.json")
    check_target(json_path, settings(args), args.overwrite)
    channels, _, spatial = _input_layout(args.padding_report, args)
    x = np.zeros((1, *spatial, channels), np.float32)
    lo, hi = args.size_range or (args.size, args.size + 31)
    results = {f"{p}-{f}": padding_report_variant(
        args.padding_report, p, f, x, sizes=range(lo, hi + 1), value=args.bias_value,
        bn_shift=args.bn_shift, seed=args.seed) for p, f in variants}
    title = (f"{args.padding_report} at {'x'.join(map(str, spatial))}: windowed layers, pads "
             f"(lo, hi), trailing pixels no window reads, the pads used; spatial bias = "
             f"response to a constant {args.bias_value:g} input (bias frame: pixels from the "
             f"edge before the channel-mean map is constant)"
             f"{f', BN shift {args.bn_shift}' if args.bn_shift else ''}")
    console = Console(width=200)
    for name, result in results.items():
        console.print(render_padding_table(name, result, title))
        console.print(padding_summary(name, result, (lo, hi)))
    os.makedirs(args.out, exist_ok=True)
    plot_bias_maps(results, os.path.join(args.out, "padding_bias.png"), title)
    atomic.write_text(os.path.join(args.out, "padding_report.md"),
                      padding_markdown(results, title, (lo, hi)))
    serial = {name: {"layers": [{**r._asdict(), "effective": r.effective, "uneven": r.uneven}
                                for r in result["layers"]],
                     "even_sizes": result["even_sizes"], "bias_width": result["bias_width"],
                     "bias_maps": {k: np.asarray(m).tolist()
                                   for k, m in result["bias_maps"].items()}}
              for name, result in results.items()}
    atomic.write_json(json_path, {"args": vars(args), "title": title, "size_range": [lo, hi],
                                  "variants": serial}, indent=1, default=str)
    print(f"wrote {args.out}/padding_report.json, padding_report.md, padding_bias.png")
    return 0
