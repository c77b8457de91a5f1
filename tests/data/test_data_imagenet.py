"""ImageNet through tfds (mock_data, TensorFlow not installed), preprocessing, folder, CLI."""
import argparse
import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

import jaxeq.data as data
from jaxeq.data import imagenet as inet
from jaxeq.data import transforms

tfds = pytest.importorskip("tensorflow_datasets")


def _labels(ds):
    return np.array([int(ds[i]["label"]) for i in range(len(ds))])


def test_mock_subsets_and_200_classes(tmp_path):
    with tfds.testing.mock_data(num_examples=300, policy=tfds.testing.MockPolicy.USE_CODE):
        raw = _labels(inet.open_split("train"))
        sub = data.get("imagenet", split="train", seed=3, per_class=1, workdir=str(tmp_path),
                       cache_dir=str(tmp_path / "cache"))
        assert len(sub) == len(np.unique(raw)) and sub.num_classes == 1000
        assert sorted(raw[sub.indices]) == sorted(np.unique(raw))  # one per class
        record = list(tmp_path.glob("imagenet_train_all_1pc_seed3_indices.json"))
        assert len(record) == 1 and json.loads(record[0].read_text())["indices"] == sub.indices.tolist()
        # the written indices are read back: a run repeats exactly
        record[0].write_text(json.dumps({"indices": sub.indices[:2].tolist()}))
        again = data.get("imagenet", split="train", seed=3, per_class=1, workdir=str(tmp_path),
                         cache_dir=str(tmp_path / "cache"))
        np.testing.assert_array_equal(again.indices, sub.indices[:2])
        x = sub[0]
        assert x["image"].shape == (224, 224, 3) and x["image"].dtype == np.uint8
        assert sub.get(0, epoch=0)["image"].tobytes() == x["image"].tobytes()  # deterministic
        batch = next(data.batches(sub, 4, shuffle=True, seed=0, epoch=1))
        assert batch["image"].shape == (4, 224, 224, 3) and batch["image"].dtype == np.uint8

        a200 = data.get("imagenet_a200", split="test", cache_dir=str(tmp_path / "cache"),
                        eval_resize=288, eval_crop=288)
        raw_val = _labels(inet.open_split("validation"))
        keep = np.flatnonzero(np.isin(raw_val, inet.imagenet_a_200_indices()))
        np.testing.assert_array_equal(a200.indices, keep)
        assert a200.num_classes == 200
        for j in range(len(a200)):
            s = a200[j]
            assert s["image"].shape == (288, 288, 3)
            assert inet.imagenet_a_200_indices()[int(s["label"])] == raw_val[keep[j]]
    assert "tensorflow" not in sys.modules


def _jpeg(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_encoded_jpeg_path_and_quadrant_imagenet(tmp_path):
    """A fake data source that hands out JPEG bytes when tfds is asked to skip decoding (the
    path real ArrayRecord data takes), 3 images for each of 4 classes."""
    g = np.random.default_rng(0)
    images = [g.integers(0, 256, (300 + 10 * k, 260, 3), dtype=np.uint8) for k in range(12)]
    labels = [k % 4 for k in range(12)]
    asked = []

    def fake(self, split, decoders=None, deserialize_method=None, **kwargs):
        asked.append(decoders)
        skip = decoders is not None
        return [{"image": _jpeg(im) if skip else im, "label": np.int64(lab)}
                for im, lab in zip(images, labels)]

    with tfds.testing.mock_data(as_data_source_fn=fake, policy=tfds.testing.MockPolicy.USE_CODE):
        splits = {s: data.get("quadrant", source="imagenet", split=s, seed=1, border=3,
                              cache_dir=str(tmp_path)) for s in ("train", "val", "test")}
        src = data.get("imagenet", split="val", cache_dir=str(tmp_path), per_class=2, seed=0)
        assert len(src) == 8 and src[0]["image"].shape == (224, 224, 3)
    assert isinstance(asked[0]["image"], tfds.decode.SkipDecoding)
    origins = [set(s.origin) for s in splits.values()]
    assert all(len(o) == 4 for o in origins)
    assert not origins[0] & origins[1] and not origins[0] & origins[2] and not origins[1] & origins[2]
    # patch k of a split: image -> resize 256 / crop 224 -> normalised -> the official
    # cv2.resize(56) (INTER_LINEAR: bilinear at half-pixel centres, src = 4 d + 1.5 here)
    i = int(splits["train"].origin[0].split("[")[1].rstrip("]"))
    crop = transforms.eval_image(_jpeg(images[i]), resize=256, crop=224).astype(np.float64) / 255
    crop = (crop - data.IMAGENET_MEAN) / data.IMAGENET_STD
    src = 4 * np.arange(56) + 1.5
    lo, w = np.floor(src).astype(int), src - np.floor(src)
    rows = crop[lo] * (1 - w)[:, None, None] + crop[lo + 1] * w[:, None, None]
    want = rows[:, lo] * (1 - w)[None, :, None] + rows[:, lo + 1] * w[None, :, None]
    np.testing.assert_allclose(splits["train"].patches[0], want, atol=1e-5)
    assert splits["train"][0]["image"].shape == (126, 126, 3)


def test_not_prepared_errors_print_the_command(tmp_path):
    with pytest.raises(inet.DataNotPreparedError, match=r"tfds build imagenet2012 --manual_dir=\S+ "
                       r"--file_format=array_record"):
        data.get("imagenet", split="val", data_dir=str(tmp_path / "nothing"))
    for manual in (tmp_path / "missing", tmp_path):
        with pytest.raises(inet.DataNotPreparedError, match="does not exist|is empty") as err:
            inet.check_manual_dir(manual)
        assert f"--manual_dir={manual} --file_format=array_record" in str(err.value)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(inet.DataNotPreparedError, match="lacks ILSVRC2012_img_train.tar"):
        inet.check_manual_dir(tmp_path)


def test_cli_prepare_and_info(tmp_path, capsys):
    from jaxeq.cli import data as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.main(parser.parse_args(["prepare-imagenet", "--manual-dir", str(tmp_path / "x")])) == 1
    assert "tfds build imagenet2012" in capsys.readouterr().err
    for f in inet.MANUAL_FILES:
        (tmp_path / f).touch()
    assert cli.main(parser.parse_args(["prepare-imagenet", "--manual-dir", str(tmp_path)])) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"tfds build imagenet2012 --manual_dir={tmp_path} --file_format=array_record")
    assert cli.main(parser.parse_args(["info", "red_green", "--split", "val", "--kw", "size=6"])) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["len"] == 6 and info["image_shape"] == [32, 32, 3]


def test_transforms_geometry_and_determinism():
    yy, xx = np.mgrid[:300, :400]  # smooth content: sub-pixel differences stay small
    img = np.stack([128 + 100 * np.sin(xx / 23.0), 128 + 100 * np.cos(yy / 17.0), (xx + yy) / 3],
                   -1).astype(np.uint8)
    out = transforms.eval_image(img, resize=256, crop=224)
    # same as resizing the whole image (shorter side 256) then cropping the center
    full = np.asarray(Image.fromarray(img).resize((341, 256), Image.Resampling.BILINEAR))
    ref = full[16:240, 58:282]
    assert out.shape == (224, 224, 3)
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 1  # a 2 px shift gives > 2.5
    assert transforms.eval_image(_jpeg(img), resize=288, crop=288).shape == (288, 288, 3)
    a = transforms.train_image(_jpeg(img), np.random.default_rng(5))
    b = transforms.train_image(_jpeg(img), np.random.default_rng(5))
    c = transforms.train_image(_jpeg(img), np.random.default_rng(6))
    assert a.shape == (224, 224, 3) and a.tobytes() == b.tobytes() != c.tobytes()
    for seed in range(20):
        l, t, r, btm = transforms.random_resized_crop_box(400, 300, np.random.default_rng(seed))
        assert 0 <= l < r <= 400 and 0 <= t < btm <= 300
        assert (r - l) * (btm - t) >= 0.08 * 400 * 300 * 0.9


def test_folder_classification_source(tmp_path):
    g = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for k in range(10):
            Image.fromarray(g.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(tmp_path / c / f"{k}.jpg")
    (tmp_path / "dog" / "junk.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.warns(UserWarning, match="skipped 1 of 21"):
        splits = {s: data.get("folder", split=s, root=str(tmp_path), image_size=32, eval_resize=40)
                  for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    paths = [set(map(str, splits[s].paths)) for s in splits]
    assert not paths[0] & paths[1] and not paths[1] & paths[2] and not paths[0] & paths[2]
    x = splits["train"].get(0, epoch=3)
    assert x["image"].shape == (32, 32, 3) and x["image"].dtype == np.uint8
    assert splits["val"].num_classes == 2 and set(splits["train"].labels) == {0, 1}
    with pytest.raises(ValueError, match="root"):
        data.get("folder", split="train")


def test_throughput_measure_runs():
    from jaxeq.data.throughput import measure

    result = measure(num_images=4, workers=2)
    assert result["train_images_per_s_1_thread"] > 0 and result["eval_images_per_s_2_threads"] > 0
    assert result["train_cores_for_3000_images_per_s"] >= 1


# ----------------------------------------------------------------------------- E4a: the official 50/class list
def _converter():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "convert_imagenet50_pickle.py"
    spec = importlib.util.spec_from_file_location("convert_imagenet50_pickle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_official_50_per_class_resource():
    import re
    from importlib import resources
    from pathlib import Path

    lists = inet.official_50_per_class()
    assert len(lists) == 1000 and all(len(v) == 50 for v in lists.values())
    names = [f for v in lists.values() for f in v]
    assert len(set(names)) == 50_000
    assert all(re.fullmatch(rf"{w}_[1-9]\d*\.JPEG", f) for w, v in lists.items() for f in v)
    # the classes are tfds imagenet2012's, whose label i is the i-th wnid in sorted order
    tfds_wnids = (Path(tfds.__file__).parent / "datasets" / "imagenet2012" / "labels.txt").read_text().split()
    assert list(lists) == sorted(lists) == tfds_wnids
    spec = json.loads(resources.files("jaxeq").joinpath(inet.OFFICIAL50_RESOURCE).read_text())
    assert spec["commit"] == "4fae1d8"
    assert spec["sha256"] == "11160099b3c6ff3a2559e36163481fa1f609ed1109d144eca599c3001f56ca96"
    assert "n01440764_2823.JPEG" in lists["n01440764"]  # the pickle's first entry


def test_official_list_converter_reads_lists_of_str_only():
    import pickle

    conv = _converter()
    pairs = [["n01440764", "n01440764_2823.JPEG"], ["n01443537", "n01443537_10.JPEG"]]
    for protocol in (2, 3, 4, 5):
        assert conv.parse_list_of_str_pickle(pickle.dumps(pairs, protocol=protocol)) == pairs
    for evil in (pickle.dumps(print), pickle.dumps({"a": 1}), pickle.dumps([("t", 1)])):
        with pytest.raises(ValueError, match="not allowed"):
            conv.parse_list_of_str_pickle(evil)
    with pytest.raises(ValueError, match="50000 pairs"):
        conv.convert(pickle.dumps(pairs, protocol=3))


def _mock_train_split(file_names, labels, image):
    """tfds mock_data whose every split serves these records (JPEG bytes when skip-decoding)."""
    def fake(self, split, decoders=None, **kwargs):
        img = _jpeg(image) if decoders is not None else image
        return [{"image": img, "label": np.int64(lab), "file_name": name}
                for name, lab in zip(file_names, labels)]
    return tfds.testing.mock_data(as_data_source_fn=fake, policy=tfds.testing.MockPolicy.USE_CODE)


def _official_records(seed=0):
    """Every listed file (as bytes, as tfds serves Text) plus one unlisted file per class for
    the first 40 classes, in a shuffled order; labels as tfds (sorted wnid index)."""
    lists = inet.official_50_per_class()
    wnids = list(lists)
    names, labels = [], []
    for label, w in enumerate(wnids):
        listed = lists[w]
        names += listed
        labels += [label] * len(listed)
        if label < 40:
            taken = {int(f.split("_")[1].split(".")[0]) for f in listed}
            names.append(f"{w}_{min(set(range(1, 200)) - taken)}.JPEG")
            labels.append(label)
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i].encode() for i in order], [labels[i] for i in order], wnids


def test_official50_subset_picks_exactly_the_listed_files(tmp_path):
    names, labels, wnids = _official_records()
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    with _mock_train_split(names, labels, image):
        src = data.get("imagenet", split="train", seed=5, per_class=50, subset="official50",
                       workdir=str(tmp_path), cache_dir=str(tmp_path / "cache"), image_size=32)
        assert len(src) == 50_000 and src.num_classes == 1000
        chosen = {names[i].decode() for i in src.indices}
        assert chosen == {f for v in inet.official_50_per_class().values() for f in v}
        assert np.all(np.diff(src.indices) > 0)
        for j in (0, 12345, 49_999):  # labels follow the file's class
            i = int(src.indices[j])
            assert wnids[int(src[j]["label"])] == names[i].decode().split("_")[0]
        assert src[0]["image"].shape == (32, 32, 3)
        record = tmp_path / "imagenet_train_all_official50_indices.json"
        written = json.loads(record.read_text())
        assert written["subset"] == "official50" and written["indices"] == src.indices.tolist()
        assert len(list((tmp_path / "cache").glob("*_official50_indices.npy"))) == 1
        # the seed does not change the list (only the augmentation); read back from the cache
        other = data.get("imagenet", split="train", seed=6, subset="official50",
                         cache_dir=str(tmp_path / "cache"))
        np.testing.assert_array_equal(other.indices, src.indices)
        with pytest.raises(ValueError, match="official50.*split='train'"):
            data.get("imagenet", split="val", subset="official50", cache_dir=str(tmp_path / "c"))
        with pytest.raises(ValueError, match="official50.*per_class"):
            data.get("imagenet", split="train", per_class=100, subset="official50",
                      cache_dir=str(tmp_path / "c"))
        with pytest.raises(ValueError, match="subset must be one of"):
            data.get("imagenet", split="train", subset="paper", cache_dir=str(tmp_path / "c"))


def test_official50_subset_missing_file_is_a_one_line_error(tmp_path):
    names, labels, _ = _official_records(seed=1)
    gone = inet.official_50_per_class()["n01443537"][7]
    keep = [k for k, n in enumerate(names) if n.decode() != gone]
    image = np.zeros((8, 8, 3), np.uint8)
    with _mock_train_split([names[k] for k in keep], [labels[k] for k in keep], image):
        with pytest.raises(ValueError) as err:
            data.get("imagenet", split="train", per_class=50, subset="official50",
                     cache_dir=str(tmp_path / "cache"))
    msg = str(err.value)
    assert "\n" not in msg and "1 of the 50000 files" in msg and gone in msg
    assert "subset='random'" in msg
