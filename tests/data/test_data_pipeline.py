"""Pipeline: per-process shares, eval padding, exact resume, to_model_input."""
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq.data as data


def _source(n=23):
    images = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)
    return data.ArraySource(images, np.arange(n) % 3, num_classes=3)


class _MinimalSource:
    """Only len and __getitem__ (the contract's minimum), with uint8 images."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"image": np.full((3, 3, 3), i, np.uint8), "label": np.int32(i)}


def _ids(batch):
    return batch["image"][:, 0, 0, 0].astype(int)


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_global_batch_independent_of_process_count(drop_remainder):
    src = _source()
    kw = dict(shuffle=True, seed=4, epoch=2, drop_remainder=drop_remainder)
    single = list(data.batches(src, 8, **kw))
    assert len(single) == data.num_batches(src, 8, drop_remainder) == (2 if drop_remainder else 3)
    for count in (2, 4):
        shares = [list(data.batches(src, 8, process_index=p, process_count=count, **kw))
                  for p in range(count)]
        for k, batch in enumerate(single):
            for key in ("image", "label", "mask"):
                joined = np.concatenate([shares[p][k][key] for p in range(count)])
                np.testing.assert_array_equal(joined, batch[key])
            assert all(shares[p][k]["image"].shape[0] == 8 // count for p in range(count))


def test_eval_padding_counts_every_sample_once():
    src = _source(23)
    seen = []
    for p in range(4):
        for batch in data.batches(src, 8, shuffle=False, seed=0, epoch=0, drop_remainder=False,
                                  process_index=p, process_count=4, prefetch=0):
            seen.extend(_ids(batch)[batch["mask"]])
            assert not batch["image"][~batch["mask"]].any()  # padding is zeros
    assert sorted(seen) == list(range(23))
    last = list(data.batches(src, 8, shuffle=False, seed=0, epoch=0, drop_remainder=False))[-1]
    np.testing.assert_array_equal(last["mask"], np.arange(8) < 7)
    dropped = list(data.batches(src, 8, shuffle=True, seed=0, epoch=0))
    assert all(b["mask"].all() for b in dropped) and sum(len(b["label"]) for b in dropped) == 16


def test_shuffle_is_a_permutation_per_epoch_and_resume_is_exact():
    src = _source(40)
    e0 = np.concatenate([_ids(b) for b in data.batches(src, 5, shuffle=True, seed=1, epoch=0)])
    e1 = np.concatenate([_ids(b) for b in data.batches(src, 5, shuffle=True, seed=1, epoch=1)])
    assert sorted(e0) == sorted(e1) == list(range(40))
    assert not np.array_equal(e0, e1) and not np.array_equal(e0, np.arange(40))
    full = list(data.batches(src, 5, shuffle=True, seed=1, epoch=1))
    resumed = list(data.batches(src, 5, shuffle=True, seed=1, epoch=1, start_batch=3, prefetch=0))
    assert len(resumed) == len(full) - 3
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_minimal_source_and_early_stop():
    src = _MinimalSource()
    batches = list(data.batches(src, 4, shuffle=False, seed=0, epoch=0, drop_remainder=False))
    assert [b["image"].dtype for b in batches] == [np.uint8] * 3
    np.testing.assert_array_equal(batches[-1]["label"], [8, 9, 0, 0])
    it = data.batches(_source(), 2, shuffle=False, seed=0, epoch=0)
    next(it)
    it.close()  # stopping early must not hang the prefetch thread


def test_batches_bad_input():
    src = _source()
    with pytest.raises(ValueError, match="multiple of process_count"):
        data.batches(src, 6, shuffle=False, seed=0, epoch=0, process_count=4)
    with pytest.raises(ValueError, match="process_index"):
        data.batches(src, 8, shuffle=False, seed=0, epoch=0, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="start_batch"):
        data.batches(src, 8, shuffle=False, seed=0, epoch=0, start_batch=5)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(src, 0, shuffle=False, seed=0, epoch=0)


def test_to_model_input():
    x = np.array([[[[0, 128, 255]]]], np.uint8)
    y = np.asarray(data.to_model_input(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[0, 0, 0], (np.array([0, 128, 255]) / 255 - data.IMAGENET_MEAN)
                               / data.IMAGENET_STD, rtol=1e-6)
    np.testing.assert_allclose(y, data.normalise_uint8(x), rtol=1e-6)
    f = jnp.ones((1, 2, 2, 3), jnp.bfloat16)
    assert data.to_model_input(f) is f
    with pytest.raises(ValueError, match="3 channels"):
        data.to_model_input(np.zeros((1, 2, 2, 1), np.uint8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        data.to_model_input(np.zeros((1, 2, 2, 3), np.int32))
