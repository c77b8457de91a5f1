"""E5 action recognition (#21): the official clip sampling against hand computations, video-level
averaging, the moving-shapes analog (labels independent of position), UCF101 / HMDB51 frame
folders in the real layout read back, the ``full`` config for two steps on such a folder and the
``quick`` variant end to end."""
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jaxeq.data as data
from jaxeq import experiments as runner
from jaxeq.data import video

ms = importlib.import_module("jaxeq.data.moving_shapes")  # jaxeq.data.moving_shapes is the builder


# ----------------------------------------------------------------------------- clip sampling
def test_train_clip_is_the_official_temporal_random_crop():
    # official TemporalRandomCrop: begin = randint(0, max(0, n - 16 - 1)) (both ends inclusive)
    starts = set()
    g = np.random.default_rng(0)
    for _ in range(400):
        clip = video.train_clip(20, 16, g)
        assert clip.tolist() == list(range(clip[0], clip[0] + 16))
        starts.add(int(clip[0]))
    assert starts == {0, 1, 2, 3}  # 20 - 16 - 1 = 3: frame 19 (the last) is never reached
    # a 5-frame video is looped: 0 1 2 3 4 0 1 2 3 4 0 ... (official LoopPadding)
    assert video.train_clip(5, 16, g).tolist() == [0, 1, 2, 3, 4] * 3 + [0]
    assert video.loop_pad([7, 8, 9], 7).tolist() == [7, 8, 9, 7, 8, 9, 7]


def test_eval_clips_follow_the_official_make_dataset():
    # test (n_samples 0): step 16 from frame 0 over range(0, n - 1): n = 40 -> starts 0, 16, 32
    clips = video.eval_clips(40, 16, 0)
    assert [c[0] for c in clips] == [0, 16, 32]
    assert clips[2].tolist() == [32, 33, 34, 35, 36, 37, 38, 39] * 2   # looped tail
    # validation (3 samples): step = max(1, ceil((n - 1 - 16) / 2)); n = 100 -> 42: 0, 42, 84
    assert [c[0] for c in video.eval_clips(100, 16, 3)] == [0, 42, 84]
    # a short video gets more than 3: n = 30 -> step ceil(13 / 2) = 7: 0, 7, 14, 21, 28
    assert [c[0] for c in video.eval_clips(30, 16, 3)] == [0, 7, 14, 21, 28]
    assert all(len(c) == 16 for c in video.eval_clips(30, 16, 3))
    assert len(video.eval_clips(1, 16, 0)) == 1
    with pytest.raises(ValueError, match="clips must be"):
        video.eval_clips(40, 16, 1)


def test_corner_crop_boxes_and_eval_view():
    # MultiScaleCornerCrop on 320x240: side int(240 * scale); centre box is +-side//2
    assert video.corner_box(240, 320, 1.0, "c") == (0, 40, 240, 280)
    assert video.corner_box(240, 320, 0.5, "br") == (120, 200, 240, 320)
    assert video.corner_box(240, 320, 0.5, "tr") == (0, 200, 120, 320)
    frames = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    # short side already the size: only the centre crop (x from round((6 - 4) / 2) = 1)
    np.testing.assert_array_equal(video.eval_view(frames, 4), frames[:, :, 1:5])


def test_video_level_top1_averages_softmax_over_clips():
    # video 0: clips favour class 1, 1, then 0 strongly: mean favours 0 (0.9+0.4+0.4 vs ...)
    scores = np.array([[0.4, 0.6], [0.4, 0.6], [0.99, 0.01],   # video 0, label 0
                       [0.2, 0.8],                             # video 1, label 1
                       [0.7, 0.3], [0.6, 0.4]])                # video 2, label 1
    vid = [0, 0, 0, 1, 2, 2]
    labels = [0, 0, 0, 1, 1, 1]
    # means: v0 (0.597, 0.403) -> 0 correct; v1 -> 1 correct; v2 -> 0 wrong; 2 of 3
    acc, n = video.video_level_top1(scores, vid, labels)
    assert n == 3 and acc == pytest.approx(200 / 3)


# ----------------------------------------------------------------------------- moving shapes
@pytest.fixture(scope="module")
def shapes():
    return ms.moving_shapes_videos("train", 0, 24, 16, 24)


def test_moving_shapes_motion_and_position_independent_of_label(shapes):
    videos, labels, mids = shapes
    assert videos.shape == (192, 16, 24, 24, 3) and np.bincount(labels).tolist() == [24] * 8
    # the object centre over the video is the drawn mid point for every class (translations
    # are symmetric about it), and the mid points are distributed alike for every class
    g = np.random.default_rng(1)
    for k in range(8):
        p = ms.video_params(k, 16, 24, g)
        np.testing.assert_allclose(p["centre"].mean(0), p["mid"], atol=1e-9)
    per_class = np.array([mids[labels == k].mean(0) for k in range(8)])
    # uniform over [6, 18] (std 3.46): a class mean of 24 has std 0.71; 3.5 of them allowed
    assert np.abs(per_class - mids.mean(0)).max() < 2.5
    # the drawn positions do not depend on the label: the same stream gives the same mid point
    for k in range(8):
        assert np.allclose(ms.video_params(k, 16, 24, ms.rng(0, 71, 0, 5))["mid"], mids[5])
    # the motion is what differs: a 'right' video's bright object moves right
    right = videos[labels == 0][0].astype(np.float64).sum(-1)
    xs = [np.average(np.arange(24), weights=(f > f.mean() + f.std()).sum(0) + 1e-9) for f in right]
    assert xs[-1] > xs[0] + 4


def test_moving_shapes_source_is_deterministic_and_clips_like_the_recipe():
    a = data.get("moving_shapes", split="train", seed=3, per_class=2)
    b = data.get("moving_shapes", split="train", seed=3, per_class={"train": 2})
    np.testing.assert_array_equal(a.get(5, epoch=1)["image"], b.get(5, epoch=1)["image"])
    assert a.get(5, epoch=1)["image"].shape == (8, 24, 24, 3)
    test = data.get("moving_shapes", split="test", seed=3, per_class=1)
    assert len(test) == 16 and test.video_index.tolist() == [v for v in range(8) for _ in (0, 1)]
    np.testing.assert_array_equal(test[1]["image"], test.store.videos[0][8:16])


# ----------------------------------------------------------------------------- real layouts
def _frames(folder, n, h=30, w=40, suffix=".png", value=0):
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        img = np.full((h, w, 3), (value + 10 * i) % 256, np.uint8)
        img[0, 0] = i
        Image.fromarray(img).save(folder / f"image_{i + 1:05d}{suffix}")
        out.append(img)
    return np.stack(out)


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf101")
    (root / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    train, test, frames = [], [], {}
    for k, cls in enumerate(("ApplyEyeMakeup", "Archery")):
        for g, split in ((8, train), (9, train), (1, test)):
            name = f"v_{cls}_g{g:02d}_c01"
            frames[name] = _frames(root / cls / name, 20 + g, value=40 * k + g, suffix=".jpg"
                                   if g == 9 else ".png")
            split.append(f"{cls}/{name}.avi" + (f" {k + 1}" if split is train else ""))
    (root / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (root / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root, frames


def test_ucf101_folder_read_back(ucf_root):
    root, frames = ucf_root
    src = data.get("ucf101", split="test", seed=0, root=str(root), size=30, duration=16)
    assert src.num_classes == 2 and src.store.class_names == ("ApplyEyeMakeup", "Archery")
    # test videos have 21 frames: clips at 0 and 16 (the second looped), both of video 0
    assert src.video_index.tolist() == [0, 0, 1, 1] and src.labels.tolist() == [0, 0, 1, 1]
    want = frames["v_Archery_g01_c01"][video.eval_clips(21, 16, 0)[1]][:, :, 5:35]
    np.testing.assert_array_equal(src[3]["image"], want)     # png: exact
    train = data.get("ucf101", split="train", seed=0, root=str(root), size=16, duration=8)
    assert len(train) == 4 and train.labels.tolist() == [0, 0, 1, 1]
    assert train.get(1, epoch=2)["image"].shape == (8, 16, 16, 3)   # a jpg video, cropped
    with pytest.raises(FileNotFoundError, match="trainlist02.txt"):
        data.get("ucf101", split="train", root=str(root), split_id=2)


def test_missing_frames_and_hmdb51_split_files(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 Walk\n")
    (tmp_path / "trainlist01.txt").write_text("Walk/v_Walk_g01_c01.avi 1\n")
    (tmp_path / "testlist01.txt").write_text("")
    (tmp_path / "Walk").mkdir()
    (tmp_path / "Walk" / "v_Walk_g01_c01.avi").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="extract frames first"):
        data.get("ucf101", split="train", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="_test_split1.txt"):
        data.get("hmdb51", split="train", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="HMDB51 needs root"):
        data.get("hmdb51", split="train")
    hm = tmp_path / "hmdb"
    for cls, rows in (("brush_hair", "a.avi 1\nb.avi 2\nc.avi 0\n"), ("cartwheel", "d.avi 1\n")):
        (hm / "splits").mkdir(parents=True, exist_ok=True)
        (hm / "splits" / f"{cls}_test_split1.txt").write_text(rows)
        for v in "abcd":
            if f"{v}.avi" in rows:
                _frames(hm / cls / v, 18)
    train = data.get("hmdb51", split="train", root=str(hm), splits_dir=str(hm / "splits"), size=16)
    test = data.get("hmdb51", split="test", root=str(hm), splits_dir=str(hm / "splits"), size=16)
    assert train.store.class_names == ("brush_hair", "cartwheel")
    assert train.labels.tolist() == [0, 1] and test.labels.tolist() == [0, 0]  # 18 frames: 2 clips


# a tiny UCF101 written by tfds' own Ucf101 builder (scripts/make_tfds_ucf101_fixture.py):
# train videos (frames, label) (5, 0), (6, 1), (7, 100); test (6, 1), (5, 0); frame f of the
# v-th video of its split has the colour (40 v + 20 f, 3 f, 250 - 30 v), JPEG-encoded
TFDS_FIXTURE = Path(__file__).parents[1] / "data" / "fixtures" / "tfds"
TFDS_VIDEOS = {"train": {0: (0, 5), 1: (1, 6), 100: (2, 7)}, "test": {1: (0, 6), 0: (1, 5)}}


@pytest.mark.parametrize("split", ["train", "test"])
def test_tfds_prepared_ucf101_read_without_tensorflow(split):
    store = video.TfdsVideos("ucf101/ucf101_1", split, str(TFDS_FIXTURE))
    assert len(store.class_names) == 101 and store.class_names[:2] == ("ApplyEyeMakeup",
                                                                       "ApplyLipstick")
    assert sorted(store.labels.tolist()) == sorted(TFDS_VIDEOS[split])
    for i, label in enumerate(store.labels.tolist()):
        v, n = TFDS_VIDEOS[split][label]
        assert store.n_frames(i) == n
        clip = store.frames(i, np.array([n - 1, 0]))       # only these two are decoded
        assert clip.shape == (2, 12, 16, 3)
        for got, f in zip(clip, (n - 1, 0)):
            want = np.array([40 * v + 20 * f, 3 * f, 250 - 30 * v])
            np.testing.assert_allclose(got.reshape(-1, 3).mean(0), want, atol=4)  # JPEG
    # through the data registry: non-overlapping test clips of 4 frames, 2 of the 6-frame video
    # (label 1), 1 of the 5-frame one (starts over range(0, n - 1, 4), as the official code)
    if split == "test":
        src = data.get("ucf101", split="test", data_dir=str(TFDS_FIXTURE), size=8, duration=4)
        assert len(src) == 3 and sorted(src.labels.tolist()) == [0, 1, 1]
        assert src[0]["image"].shape == (4, 8, 8, 3)


def test_tfds_ucf101_not_prepared_or_not_array_record(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tfds build ucf101/ucf101_1 .*array_record.*root="):
        data.get("ucf101", split="train", data_dir=str(tmp_path))
    folder = tmp_path / "ucf101" / "ucf101_1" / "2.0.0"
    folder.mkdir(parents=True)
    info = json.loads((TFDS_FIXTURE / "ucf101" / "ucf101_1" / "2.0.0" / "dataset_info.json")
                      .read_text())
    (folder / "dataset_info.json").write_text(json.dumps({**info, "fileFormat": "tfrecord"}))
    with pytest.raises(FileNotFoundError, match="needs array_record"):
        data.get("ucf101", split="train", data_dir=str(tmp_path))
    (folder / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(FileNotFoundError, match="lacks shard"):
        data.get("ucf101", split="train", data_dir=str(tmp_path))


# ----------------------------------------------------------------------------- runs
def _only_metrics(rec):
    return {k: v for k, v in rec["metrics"].items() if isinstance(v, (int, float))}


@pytest.mark.slow  # compiles a 3D ResNet (train, eval, evaluator)
@pytest.mark.parametrize("source", ["frame_folders", "tfds_prepared"])
def test_full_config_two_steps_on_ucf101(source, ucf_root, tmp_path):
    root, _ = ucf_root
    where = ([f"--config.train.data.kwargs.root={root}"] if source == "frame_folders" else
             [f"--config.train.data.kwargs.data_dir={TFDS_FIXTURE}"])
    config = runner.load_config("action_recognition:full", [
        "--config.archs=('resnet3d_18',)", "--config.variants=('full',)",
        "--config.train.max_steps=2", "--config.train.epochs=1", "--config.train.progress='off'",
        "--config.train.batch_size=2", "--config.train.eval_batch_size=2",
        "--config.eval.batch_size=2", *where,
        "--config.train.data.kwargs.size=16", "--config.train.data.kwargs.duration=4",
        "--config.train.model.kwargs.width=2"])
    out = runner.run(config, tmp_path, log=lambda s: None)
    (rec,) = out["records"]
    m = _only_metrics(rec)
    assert 0 <= m["video_top1_final"] <= 100 and rec["metrics"]["video_eval_videos"] == 2
    assert rec["evaluated_with"]["video_eval_params_final"] == "final"
    assert "| resnet3d_18 |" in out["markdown"] and "40.6" in out["markdown"]  # the paper's


@pytest.mark.slow  # two 3D ResNets compiled and trained one epoch
def test_quick_end_to_end(tmp_path):
    config = runner.load_config("action_recognition:quick", ["--config.train.progress='off'"])
    out = runner.run(config, tmp_path, log=lambda s: None)
    assert [r["cell"]["variant"] for r in out["records"]] == ["same", "full"]
    for rec in out["records"]:
        assert rec["metrics"]["video_eval_videos"] == 8
        assert 0 <= rec["metrics"]["video_top1_final"] <= 100
    assert "full − same" in out["markdown"] and "ANOTHER data set" in out["markdown"]
    # a rerun resumes: every cell is cached, nothing trains
    again = runner.run(config, tmp_path, log=lambda s: None)
    assert [r["metrics"] for r in again["records"]] == [r["metrics"] for r in out["records"]]
