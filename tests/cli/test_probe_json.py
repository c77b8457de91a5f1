"""``jaxeq probe``: probe.json is written atomically, and one of other settings is never
replaced without --overwrite."""
import json

from jaxeq import cli
from jaxeq.cli import probe as probe_cli

SMALL = ["probe", "--model", "toy_strided", "--variants", "same:zeros", "--size", "16",
         "--action", "roll"]


def _probe(out, *extra):
    return cli.main([*SMALL, "--out", str(out), *extra])


def test_other_settings_are_refused_same_ones_replaced(tmp_path, capsys, monkeypatch):
    writes = []
    real = probe_cli.atomic.write_json
    monkeypatch.setattr(probe_cli.atomic, "write_json",
                        lambda path, *a, **k: (writes.append(str(path)), real(path, *a, **k)))
    out = tmp_path / "p"
    assert _probe(out, "--max-shift", "2") == 0
    assert writes == [str(out / "probe.json")]
    assert _probe(out, "--max-shift", "2", "--chunk", "4") == 0  # same content: replaced
    before = (out / "probe.json").read_text()
    capsys.readouterr()
    assert _probe(out, "--max-shift", "1") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out / 'probe.json'} holds a probe of other settings (max_shift: 2 "
                   f"there, 1 here); pass --overwrite to replace it, or choose another --out"]
    assert (out / "probe.json").read_text() == before
    assert _probe(out, "--max-shift", "1", "--overwrite") == 0
    assert json.loads((out / "probe.json").read_text())["args"]["max_shift"] == 1
    assert not list(out.glob("*.tmp"))


def test_a_file_that_is_no_probe_is_refused(tmp_path, capsys):
    out = tmp_path / "p"
    out.mkdir()
    (out / "probe.json").write_text("not json")
    assert _probe(out) == 1
    assert "is not a probe.json with recorded settings; pass --overwrite" in \
        capsys.readouterr().err
    assert (out / "probe.json").read_text() == "not json"
    assert _probe(out, "--overwrite") == 0
    assert json.loads((out / "probe.json").read_text())["args"]["model"] == "toy_strided"
