"""Evaluator ``shift_robustness`` (SPEC E3): diagonal-shift top-1 and crop consistency, and on
request circular-shift consistency.

Chosen by ``config.eval.kind = "shift_robustness"``; ``config.eval.models`` says which
parameters it runs on: 'best' (best validation, metric names as is) and/or 'final' (after the
last epoch, names suffixed ``_final``). ``config.eval.circular`` (default off) adds
``circular_consistency``: % of images whose top-1 agrees under two independent circular shifts
in ``[-circular_max_shift, circular_max_shift)^2`` (Chaman & Dokmanic; ``jq.circular_consistency``)
of the centre ``crop`` window, i.e. the input size the model was trained on.
"""
from __future__ import annotations

from typing import Sequence

from jaxeq import xla_options
from jaxeq.experiments.evaluators.checkpoints import load_trained_params, model_suffix
from jaxeq.experiments.sources import split_source

METRICS = ("diagonal", "consistency")  # the per-model names reported (plus diagonal_curve)


def models(ev) -> tuple[str, ...]:
    """The parameters ``ev`` evaluates: a subset of ('best', 'final')."""
    return tuple(ev.get("models", ("best",)) or ("best",))


def _metrics(ev) -> tuple[str, ...]:
    """The per-model metric names ``ev`` asks for."""
    return METRICS + (("circular_consistency",) if ev is not None and ev.get("circular") else ())


def missing(ev, have) -> tuple[str, ...]:
    """The models among :func:`models` whose metrics ``have`` (a record's metrics) lacks."""
    return tuple(w for w in models(ev)
                 if any(m + model_suffix(w) not in have for m in _metrics(ev)))


def metric_names(which: Sequence[str], ev=None) -> list[str]:
    return [f"{m}{model_suffix(w)}" for w in which for m in _metrics(ev)]


def _centre(images, crop: int):
    """The centre ``crop`` x ``crop`` window of a batch (B, H, W, C)."""
    y, x = (images.shape[1] - crop) // 2, (images.shape[2] - crop) // 2
    return images[:, y:y + crop, x:x + crop]


def evaluate(train_cfg, cell_dir: str, ev, which: Sequence[str] = ("best",)) -> dict:
    """SPEC E3 on a trained cell: diagonal-shift top-1 (mean and per offset) and crop consistency
    of each of ``which``.

    Images come from ``ev.split`` with ``ev.data_kwargs`` (E3: resize 288, center-crop 288) and
    are evaluated in chunks of ``ev.batch_size`` images (both metrics are means over images, so
    chunking does not change them). Every model sees the same images and the same consistency
    offsets, so best and final differ by their parameters only. ``shift_eval_params`` (suffixed
    like the metrics) says which parameters were loaded: 'best', 'final', or 'last (no
    validation split)' for a 'best' model of a run without validation.
    """
    import jax
    import numpy as np

    import jaxeq as jq
    from jaxeq.data import to_model_input

    def predictor(model, variables):
        @xla_options.jit
        def predict_fn(images):
            return model.apply(variables, to_model_input(images), train=False)
        return predict_fn

    loaded = {w: load_trained_params(train_cfg, cell_dir, w) for w in dict.fromkeys(which)}
    predictors = {w: predictor(model, variables) for w, (model, variables, _) in loaded.items()}
    source = split_source(train_cfg, ev.split, ev.data_kwargs)
    n = len(source) if not ev.max_images else min(int(ev.max_images), len(source))

    offsets = range(int(ev.max_offset) + 1)  # diagonal: o = 0..max_offset (SPEC: 0..64)
    correct = {w: np.zeros(len(offsets), np.int64) for w in predictors}
    agree = {w: 0.0 for w in predictors}
    circular = {w: 0.0 for w in predictors} if ev.get("circular") else None
    count = 0
    key = jax.random.PRNGKey(int(ev.seed))
    for start in range(0, n, int(ev.batch_size)):
        idx = range(start, min(start + int(ev.batch_size), n))
        images = np.stack([np.asarray(source[i]["image"]) for i in idx])
        labels = np.array([source[i]["label"] for i in idx], np.int32)
        key, sub = jax.random.split(key)  # consistency offsets; circular folds its own key from it
        for w, predict_fn in predictors.items():
            diag = jq.diagonal_shift_accuracy(predict_fn, images, labels, crop=int(ev.crop),
                                              offsets=offsets)
            correct[w] += diag["correct"]
            # consistency offsets are uniform in {0..max_offset-1}^2 (SPEC: {0..63}^2), in %
            agree[w] += jq.crop_consistency(predict_fn, images, crop=int(ev.crop),
                                            max_offset=int(ev.max_offset),
                                            passes=int(ev.passes), key=sub) * len(idx)
            if circular is not None:
                circular[w] += jq.circular_consistency(
                    predict_fn, _centre(images, int(ev.crop)),
                    max_shift=int(ev.get("circular_max_shift", ev.max_offset)),
                    passes=int(ev.passes), key=jax.random.fold_in(sub, 1)) * len(idx)
        count += diag["count"]
    out = {}
    for w in predictors:
        curve = correct[w] / count * 100.0
        sfx = model_suffix(w)
        out.update({f"diagonal{sfx}": float(curve.mean()),
                    f"diagonal_curve{sfx}": [float(a) for a in curve],
                    f"consistency{sfx}": float(agree[w] / n)})
        if circular is not None:
            out[f"circular_consistency{sfx}"] = float(circular[w] / n)
        out[f"shift_eval_params{sfx}"] = loaded[w][2]  # which checkpoint gave these numbers
    out["shift_eval_images"] = int(n)
    return out
