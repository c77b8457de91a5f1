"""Random access to a split that ``tfds build`` prepared as array_record files, without
TensorFlow.

``tfds.data_source`` rebuilds the data set's feature objects from ``features.json``, and some
of them need TensorFlow just to be constructed (``tfds.features.Video`` converts its dtype with
``tf.dtypes``), so a prepared ``ucf101`` cannot be read that way on a machine without
TensorFlow. The files themselves need none: ``dataset_info.json`` names each split's shards
(``filepathTemplate``, ``shardLengths``), every record is a serialised ``tf.train.Example``
(parsed with the proto module tfds ships), and a ``ClassLabel`` feature's names are in
``<feature>.labels.txt``. Records are read in the order of the shards, which is the index
order of ``tfds.data_source`` on the same files.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

DEFAULT_DATA_DIR = "~/tensorflow_datasets"


class NotPreparedError(FileNotFoundError):
    """The prepared files are not where they were looked for."""


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split("."))


def prepared_folder(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of ``name`` (``"dataset/config"``, optionally ``":x.y.z"``) under
    ``data_dir`` (default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``): the given version,
    else the newest one that has a ``dataset_info.json``."""
    if not re.fullmatch(r"\w[\w.-]*(/\w[\w.-]*)?(:\d+\.\d+\.\d+)?", name):
        raise ValueError(f"name must be 'dataset[/config][:x.y.z]', got {name!r}")
    base, _, version = name.partition(":")
    root = Path(data_dir or os.environ.get("TFDS_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    folder = root / base
    if version:
        versions = [version] if (folder / version / "dataset_info.json").is_file() else []
    else:
        versions = sorted((p.name for p in folder.glob("*.*.*")
                           if re.fullmatch(r"\d+\.\d+\.\d+", p.name)
                           and (p / "dataset_info.json").is_file()), key=_version_key)
    if not versions:
        raise NotPreparedError(
            f"tfds {name!r} is not prepared in {root}: expected {folder}/"
            f"{version or 'X.Y.Z'}/dataset_info.json; prepare it once (with TensorFlow): "
            f"tfds build {base} --data_dir={root} --file_format=array_record")
    return folder / versions[-1]


class PreparedSplit:
    """One split of a prepared data set: ``len``, ``example(i)`` (feature name -> list of
    values) and ``label_names(feature)``."""

    def __init__(self, folder: str | os.PathLike, split: str):
        self.folder = Path(folder)
        info = json.loads((self.folder / "dataset_info.json").read_text())
        if info.get("fileFormat") != "array_record":
            raise NotPreparedError(
                f"{self.folder} holds {info.get('fileFormat', 'tfrecord')!r} files; random access "
                f"needs array_record: tfds build ... --file_format=array_record")
        splits = {s["name"]: s for s in info.get("splits", [])}
        if split not in splits:
            raise ValueError(f"split must be one of {sorted(splits)} for {self.folder}, "
                             f"got {split!r}")
        entry = splits[split]
        n = len(entry["shardLengths"])
        template = entry.get("filepathTemplate", "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}")
        self.paths = [self.folder / template.format(
            DATASET=info["name"], SPLIT=split, FILEFORMAT="array_record",
            SHARD_X_OF_Y=f"{i:05d}-of-{n:05d}") for i in range(n)]
        missing = [p.name for p in self.paths if not p.is_file()]
        if missing:
            raise NotPreparedError(f"{self.folder} lacks shard(s) {missing[:3]} of split "
                                   f"{split!r}; prepare it again")
        self.num_examples = sum(int(k) for k in entry["shardLengths"])
        from array_record.python.array_record_data_source import ArrayRecordDataSource
        self._records = ArrayRecordDataSource([os.fspath(p) for p in self.paths])
        if len(self._records) != self.num_examples:
            raise NotPreparedError(f"{self.folder} split {split!r}: the shards hold "
                                   f"{len(self._records)} records, dataset_info.json says "
                                   f"{self.num_examples}; prepare it again")

    def __len__(self) -> int:
        return self.num_examples

    def example(self, i: int) -> dict[str, list]:
        from tensorflow_datasets.proto import tf_example_pb2
        parsed = tf_example_pb2.Example.FromString(self._records[int(i)])
        out = {}
        for key, feature in parsed.features.feature.items():
            kind = feature.WhichOneof("kind")
            out[key] = list(getattr(feature, kind).value) if kind else []
        return out

    def label_names(self, feature: str = "label") -> tuple[str, ...]:
        path = self.folder / f"{feature}.labels.txt"
        if not path.is_file():
            raise NotPreparedError(f"{path} is missing (the names of ClassLabel {feature!r})")
        return tuple(line for line in path.read_text().splitlines() if line)
