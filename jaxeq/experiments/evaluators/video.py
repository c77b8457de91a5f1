"""Evaluator ``video`` (E5): video-level top-1, as the official 3D-ResNet test.

Every clip of ``ev.split`` (``test``: consecutive non-overlapping clips of each video, centre
crop) goes through the model; a video's prediction is the mean of its clips' softmax scores
(official ``test.py``), and ``video_top1`` is the % of videos whose prediction is their label.
``clip_top1`` (each clip on its own) is reported beside it. ``ev.models``: 'final' (the
parameters after the last epoch: the official run tests the model it ends with; names
suffixed ``_final``) and / or 'best' (best validation; names as is).
"""
from __future__ import annotations

from typing import Sequence

from jaxeq import xla_options
from jaxeq.experiments.evaluators.checkpoints import load_trained_params, model_suffix
from jaxeq.experiments.sources import split_source

METRICS = ("video_top1", "clip_top1")


def models(ev) -> tuple[str, ...]:
    """The parameters ``ev`` evaluates: a subset of ('best', 'final')."""
    return tuple(ev.get("models", ("final",)) or ("final",))


def missing(ev, have) -> tuple[str, ...]:
    """The models among :func:`models` whose metrics ``have`` (a record's metrics) lacks."""
    return tuple(w for w in models(ev) if any(m + model_suffix(w) not in have for m in METRICS))


def metric_names(which: Sequence[str], ev=None) -> list[str]:
    return [f"{m}{model_suffix(w)}" for w in which for m in METRICS]


def clip_scores(predict, source, batch_size: int):
    """(softmax scores (clips, classes), labels (clips,)) of every clip of ``source``, in
    order, in batches of ``batch_size`` (the last one padded, so one compiled shape)."""
    import numpy as np

    from jaxeq.data import batches

    scores, labels = [], []
    for b in batches(source, batch_size, shuffle=False, seed=0, epoch=0, drop_remainder=False):
        keep = np.asarray(b["mask"])
        scores.append(np.asarray(predict(b["image"]))[keep])
        labels.append(np.asarray(b["label"])[keep])
    return np.concatenate(scores), np.concatenate(labels)


def evaluate(train_cfg, cell_dir: str, ev, which: Sequence[str] = ("final",)) -> dict:
    """``video_top1`` and ``clip_top1`` (%) of each of ``which`` on ``ev.split`` (with
    ``ev.data_kwargs``); ``video_eval_params`` says which parameters were loaded."""
    import jax
    import numpy as np

    from jaxeq.data import to_model_input
    from jaxeq.data.video import video_level_top1

    source = split_source(train_cfg, ev.split, ev.get("data_kwargs", {}))
    out = {}
    for w in dict.fromkeys(which):
        model, variables, params = load_trained_params(train_cfg, cell_dir, w)
        predict = xla_options.jit(lambda x, m=model, v=variables: jax.nn.softmax(
            m.apply(v, to_model_input(x), train=False), axis=-1))
        scores, labels = clip_scores(predict, source, int(ev.batch_size))
        video, n_videos = video_level_top1(scores, source.video_index, labels)
        sfx = model_suffix(w)
        out[f"video_top1{sfx}"] = video
        out[f"clip_top1{sfx}"] = 100.0 * float(np.mean(np.argmax(scores, 1) == labels))
        out[f"video_eval_params{sfx}"] = params
        out["video_eval_videos"] = n_videos
        out["video_eval_clips"] = int(len(labels))
    return out
