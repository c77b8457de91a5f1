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
    # patch k of a split: image -> resize 256 / crop 224 / resize 56, then normalised
    i = int(splits["train"].origin[0].split("[")[1].rstrip("]"))
    want = data.normalise_uint8(transforms.resize_array(
        transforms.eval_image(_jpeg(images[i]), resize=256, crop=224), 56))
    np.testing.assert_allclose(splits["train"].patches[0], want)
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
    from jaxeq.data import cli

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
