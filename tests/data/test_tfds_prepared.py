"""jaxeq.data.tfds_prepared: finding a prepared tfds folder and its split's records (the format
itself is tested on files tfds wrote: tests/experiments/test_action_recognition.py)."""
import shutil
from pathlib import Path

import pytest

from jaxeq.data.tfds_prepared import NotPreparedError, PreparedSplit, prepared_folder

FIXTURE = Path(__file__).parent / "fixtures" / "tfds"


def test_newest_version_or_the_named_one(tmp_path):
    source = FIXTURE / "ucf101" / "ucf101_1" / "2.0.0"
    for version in ("2.0.0", "10.0.0"):
        shutil.copytree(source, tmp_path / "ucf101" / "ucf101_1" / version)
    (tmp_path / "ucf101" / "ucf101_1" / "11.0.0").mkdir()       # no dataset_info.json: skipped
    assert prepared_folder("ucf101/ucf101_1", tmp_path).name == "10.0.0"   # numeric order
    assert prepared_folder("ucf101/ucf101_1:2.0.0", tmp_path).name == "2.0.0"
    with pytest.raises(NotPreparedError, match="3.0.0/dataset_info.json"):
        prepared_folder("ucf101/ucf101_1:3.0.0", tmp_path)
    with pytest.raises(ValueError, match="name must be 'dataset"):
        prepared_folder("../ucf101", tmp_path)


def test_env_data_dir_and_split_names(monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(FIXTURE))
    folder = prepared_folder("ucf101/ucf101_1")
    split = PreparedSplit(folder, "train")
    assert len(split) == 3 and sorted(split.example(0)) == ["label", "video"]
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train'\]"):
        PreparedSplit(folder, "validation")
