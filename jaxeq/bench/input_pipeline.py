"""``jaxeq bench data``: host decode + augment throughput on generated ImageNet-sized JPEGs and
of the grain input pipeline over them and over a synthetic set
(:func:`jaxeq.data.throughput.measure`), and the host cores needed to feed ResNet-50 training
at 3000 images/s. There is no PyTorch counterpart in this row (torchvision is not installed),
so the ``torch_*`` fields are empty and the numbers sit in ``extra``."""
from __future__ import annotations

from jaxeq.bench import harness


def rows(*, quick, only, command, log, **_) -> list[dict]:
    row = "data/decode_augment/jpeg~500x375/images_per_s"
    if not harness.wanted(row, only):
        return []
    try:
        from jaxeq.data import throughput
    except ImportError as err:
        r = harness.skipped_row(row, "data", f"jaxeq.data.throughput is not available: {err}",
                                command=command)
        log(r)
        return [r]
    res = throughput.measure(num_images=16 if quick else 256)
    r = harness.skipped_row(row, "data", None, torch_variant="none (no torchvision)",
                            command=command)
    r["extra"] = res
    log(r)
    return [r]
