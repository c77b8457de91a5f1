"""Write a tiny UCF101 split-1 data set in the format ``tfds build ucf101`` prepares, with tfds'
own ``Ucf101`` builder (its features, serialisation, file layout, metadata), so the reader in
``jaxeq.data.tfds_prepared`` is tested against files tfds wrote, not against our reading of the
format. Needs TensorFlow (like any ``tfds build``); the tests only read the output.

    python scripts/make_tfds_ucf101_fixture.py tests/data/fixtures/tfds

Videos: 3 train and 2 test clips of 5-7 frames of 12x16, labels 0, 1, 100; frame f of video v
is a constant colour (40 v + 20 f, 3 f, 250 - 30 v) so a test can tell frames apart after JPEG.
"""
import sys

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.video import ucf101

VIDEOS = {"train": [(5, 0), (6, 1), (7, 100)], "test": [(6, 1), (5, 0)]}


def frames(v: int, n: int) -> np.ndarray:
    out = np.empty((n, 12, 16, 3), np.uint8)
    for f in range(n):
        out[f] = (40 * v + 20 * f, 3 * f, 250 - 30 * v)
    return out


class TinyUcf101(ucf101.Ucf101, skip_registration=True):
    """tfds' Ucf101 (name, configs, features, version) with generated examples."""
    name = "ucf101"

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in VIDEOS}

    def _generate_examples(self, split):
        for v, (n, label) in enumerate(VIDEOS[split]):
            yield f"{split}_{v}", {"video": frames(v, n), "label": label}


if __name__ == "__main__":
    builder = TinyUcf101(config="ucf101_1", data_dir=sys.argv[1],
                         file_format="array_record")
    builder.download_and_prepare()
    print(builder.data_dir)
