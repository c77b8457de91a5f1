"""The grain pipeline: batches against a reference built from epoch_order by hand, the
checkpointable iterator state, per-sample reading of decoding sources, error propagation and
no TensorFlow import."""
import sys
import threading

import grain
import numpy as np
import pytest

import jaxeq.data as data
from jaxeq.data.pipeline import Batches, epoch_dataset


def _source(n=29):
    images = np.arange(n, dtype=np.int32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.int32)
    return data.ArraySource(images, np.arange(n) % 5, num_classes=5)


class _Decoding:
    """Looks like a decoding source (has ``workers``): only ``get`` may be called; its
    ``get_batch`` (a thread pool of its own in Folder / ImageNet) must stay unused."""
    workers = 2

    def __init__(self, n=13, bad=None):
        self.n, self.bad = n, bad

    def __len__(self):
        return self.n

    def get(self, i, *, epoch=0):
        if i == self.bad:
            raise OSError(f"cannot decode sample {i}")
        return {"image": np.full((2, 2, 3), 10 * epoch + i, np.uint8), "label": np.int32(i % 3)}

    def get_batch(self, indices, *, epoch=0):
        raise AssertionError("get_batch of a decoding source must not be called")


def _reference(n, batch_size, p, count, seed, epoch, shuffle=True):
    """Process p's batches, written from the rule in the module docstring: global batch k is
    positions [kB, (k+1)B) of the seeded order, process p takes slots [pb, (p+1)b)."""
    order = np.random.default_rng(np.random.SeedSequence([seed, 41, epoch])).permutation(n) \
        if shuffle else np.arange(n)
    b = batch_size // count
    out = []
    for k in range(-(-n // batch_size)):
        ids = order[k * batch_size + p * b:k * batch_size + (p + 1) * b]
        out.append((np.pad(ids, (0, b - len(ids))), np.arange(b) < len(ids)))
    return out


@pytest.mark.parametrize("decoding", [False, True])
@pytest.mark.parametrize("count,workers,prefetch", [(1, 1, 2), (2, 3, 1), (4, 1, 0)])
def test_batches_match_hand_written_reference(count, workers, prefetch, decoding):
    # array source: image = i, label = i % 5 (read by batch); decoding source: image =
    # 10 epoch + i, label = i % 3 (read sample by sample, batched by grain)
    src, value, label = (_Decoding(29), lambda i: 50 + i, lambda i: i % 3) if decoding else \
        (_source(29), lambda i: i, lambda i: i % 5)
    for p in range(count):
        got = list(data.batches(src, 8, shuffle=True, seed=3, epoch=5, process_index=p,
                                process_count=count, drop_remainder=False, workers=workers,
                                prefetch=prefetch))
        want = _reference(29, 8, p, count, 3, 5)
        assert len(got) == len(want) == 4
        for g, (ids, mask) in zip(got, want):
            np.testing.assert_array_equal(g["image"][:, 0, 0, 0], np.where(mask, value(ids), 0))
            np.testing.assert_array_equal(g["label"], np.where(mask, label(ids), 0))
            np.testing.assert_array_equal(g["mask"], mask)
            assert g["label"].dtype == np.int32 and g["mask"].dtype == bool


def test_epoch_dataset_is_random_access_grain():
    src = _source(29)
    ds = epoch_dataset(src, 6, shuffle=True, seed=1, epoch=2, process_index=1, process_count=2)
    assert isinstance(ds, grain.MapDataset) and len(ds) == 29 // 6
    want = _reference(29, 6, 1, 2, 1, 2)
    for k in (3, 0, 2):  # any order
        np.testing.assert_array_equal(ds[k]["image"][:, 0, 0, 0], want[k][0])


@pytest.mark.parametrize("prefetch,decoding", [(0, False), (3, False), (2, True)])
def test_iterator_state_resumes_exactly(prefetch, decoding):
    src = _Decoding(40) if decoding else _source(40)
    kw = dict(shuffle=True, seed=7, epoch=1, prefetch=prefetch, workers=2)
    full = [b["image"][:, 0, 0, 0] for b in data.batches(src, 4, **kw)]
    it = data.batches(src, 4, **kw)
    assert isinstance(it, Batches) and it.get_state() == {"epoch": 1, "batch": 0}
    for _ in range(3):
        next(it)
    state = it.get_state()  # counts batches handed out, not those prefetched
    assert state == {"epoch": 1, "batch": 3}
    it.close()
    resumed = data.batches(src, 4, start_batch=state["batch"], **kw)
    rest = [b["image"][:, 0, 0, 0] for b in resumed]
    assert len(rest) == len(full) - 3
    for a, b in zip(full[3:], rest):
        np.testing.assert_array_equal(a, b)
    assert resumed.get_state() == {"epoch": 1, "batch": 10}


def test_decoding_source_is_read_sample_by_sample_in_grain_threads():
    src = _Decoding(13)
    one = list(data.batches(src, 4, shuffle=True, seed=0, epoch=2, drop_remainder=False,
                            workers=1))
    many = list(data.batches(src, 4, shuffle=True, seed=0, epoch=2, drop_remainder=False))
    order = data.epoch_order(13, shuffle=True, seed=0, epoch=2)
    images = np.concatenate([b["image"][b["mask"]][:, 0, 0, 0] for b in many])
    np.testing.assert_array_equal(images, 20 + order)  # epoch 2's version of each sample
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a["image"], b["image"])


class _ThreadRecording(data.ArraySource):
    """An array source that records which thread builds each batch."""

    def __init__(self, *args, in_memory, **kw):
        super().__init__(*args, **kw)
        self.in_memory, self.threads = in_memory, set()

    def get_batch(self, indices, *, epoch=0):
        self.threads.add(threading.get_ident())
        return super().get_batch(indices, epoch=epoch)


@pytest.mark.parametrize("in_memory", [True, False])
def test_in_memory_source_is_batched_in_the_callers_thread(in_memory):
    base = _source(29)
    src = _ThreadRecording(base.images, base.labels, num_classes=5, in_memory=in_memory)
    got = list(data.batches(src, 8, shuffle=True, seed=3, epoch=5, prefetch=2, workers=2))
    # a slice of arrays is cheaper than a thread hand-over: no loader thread for it; any other
    # source is loaded ahead on grain's threads
    assert (src.threads == {threading.get_ident()}) == in_memory
    want = list(data.batches(base, 8, shuffle=True, seed=3, epoch=5, prefetch=0))
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g["image"], w["image"])


def test_load_error_reaches_the_consumer():
    src = _Decoding(12, bad=int(data.epoch_order(12, shuffle=True, seed=0, epoch=0)[9]))
    it = data.batches(src, 4, shuffle=True, seed=0, epoch=0, prefetch=2)
    next(it), next(it)
    with pytest.raises(OSError, match="cannot decode sample"):
        next(it)


def test_bad_workers():
    with pytest.raises(ValueError, match="workers"):
        data.batches(_source(), 4, shuffle=False, seed=0, epoch=0, workers=0)


def test_grain_pipeline_never_imports_tensorflow():
    # in-process, as tests/data/test_data_imagenet.py checks the tfds path: grain and the
    # pipeline are imported above and run here; neither may pull TensorFlow in
    list(data.batches(_Decoding(6), 2, shuffle=True, seed=0, epoch=0))
    assert "tensorflow" not in sys.modules


def test_throughput_pipeline_rows():
    from jaxeq.data.throughput import TARGET_IMAGES_PER_S, make_jpegs, pipeline_rates

    rows = pipeline_rates(make_jpegs(2), workers=2, min_seconds=0.0)
    for name in ("folder", "red_green"):
        per_cpu = rows[f"pipeline_{name}_images_per_cpu_s_1_threads"]
        assert per_cpu > 0 and rows[f"pipeline_{name}_images_per_s_2_threads"] > 0
        assert rows[f"pipeline_{name}_cores_for_{TARGET_IMAGES_PER_S}_images_per_s"] == \
            -(-TARGET_IMAGES_PER_S // per_cpu)
