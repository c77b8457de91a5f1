"""``jaxeq probe``: probe.json is written atomically, and one of other settings is never
replaced without --overwrite."""
import json

import pytest

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


def test_action_choices_come_from_the_engine():
    from jaxeq.analysis.engine import ACTIONS

    parser = cli.argparse.ArgumentParser()
    probe_cli.add_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "action")
    assert tuple(action.choices) == tuple(ACTIONS)


def test_worst_case_of_a_circular_net_under_roll_is_exact(tmp_path):
    out = tmp_path / "wc"
    assert cli.main(["probe", "--model", "toy_cnn", "--variants", "same:circular", "same:zeros",
                     "--size", "12", "--max-shift", "0", "--action", "roll", "--batch", "3",
                     "--worst-case", "--worst-case-shift", "2", "--out", str(out)]) == 0
    assert (out / "flip_map.png").stat().st_size > 0
    wc = json.loads((out / "probe.json").read_text())["worst_case"]["variants"]
    circ = wc["same-circular"]
    assert circ["n_shifts"] == 25 and circ["n_images"] == 3
    assert circ["worst_case_consistency"] == 1.0 and circ["mac"] < 1e-6
    assert circ["flip_map_axes"] == [[-2, -1, 0, 1, 2]] * 2
    assert wc["same-zeros"]["flip_map"][2][2] == 0.0  # the zero shift never flips


def test_padding_report_writes_tables_json_and_bias_png(tmp_path, capsys):
    out = tmp_path / "pr"
    assert cli.main(["probe", "--padding-report", "red_green_net", "--variants", "same:zeros",
                     "same:circular", "--size", "16", "--size-range", "15", "17",
                     "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "UNEVEN" in text and "input sizes in [15, 17] with none: 17" in text
    for name in ("padding_report.json", "padding_report.md", "padding_bias.png"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "padding_report.json").read_text())["variants"]
    conv2 = {r["path"]: r for r in data["same-zeros"]["layers"]}["conv2"]
    # 3x3 stride 2 pad 1 on 16: windows reach 17 of the 18 padded pixels
    assert conv2["pads"] == [[1, 1], [1, 1]] and conv2["dropped"] == [1, 1]
    assert conv2["effective"] == [[1, 0], [1, 0]] and conv2["uneven"]
    assert data["same-zeros"]["even_sizes"] == [17]
    assert set(data["same-circular"]["bias_width"].values()) == {0}
    assert data["same-zeros"]["bias_width"]["conv1"] == 1
    assert "| conv2 | conv |" in (out / "padding_report.md").read_text()
    assert not list(out.glob("*.tmp"))


def test_probe_lie_shares_sum_to_one_and_circular_convs_contribute_nothing(tmp_path):
    out = tmp_path / "p"
    args = ["probe", "--model", "toy_cnn", "--variants", "same:zeros", "same:circular",
            "--size", "16", "--max-shift", "1", "--action", "roll", "--lie", "--out", str(out)]
    assert cli.main(args) == 0
    lie = json.loads((out / "probe.json").read_text())["lie"]["variants"]
    conv_share = {}
    for name, rows in lie.items():
        assert rows[-1]["path"] == "(total)" and rows[-1]["norm"] > 1e-3
        assert sum(r["share"] for r in rows[:-1]) == pytest.approx(1.0, abs=1e-4)
        conv_share[name] = max(abs(r["share"]) for r in rows if r["path"].endswith(":conv"))
    # a circular conv commutes with a roll (the ReLUs do not: they create harmonics), a
    # zero-padded one does not
    assert conv_share["same-circular"] < 1e-5 < 1e-2 < conv_share["same-zeros"]


def test_probe_position_finds_position_only_where_zero_padding_gives_it(tmp_path):
    out = tmp_path / "p"
    args = ["probe", "--model", "toy_cnn", "--variants", "same:zeros", "same:circular",
            "--size", "24", "--max-shift", "1", "--action", "roll", "--position",
            "--out", str(out)]
    assert cli.main(args) == 0
    assert (out / "position.png").stat().st_size > 0
    pos = json.loads((out / "probe.json").read_text())["position"]["variants"]
    zeros, circular = pos["same-zeros"], pos["same-circular"]
    assert zeros["layers"] == [f"{i}:{'relu' if i % 2 else 'conv'}" for i in range(8)]
    # a circular net maps a constant image to constant maps: nothing to read position from
    for test in ("black", "white"):
        assert abs(circular["summary"][test]["spc"]) < 1e-6
        assert zeros["summary"][test]["spc"] > 0.2
    assert {b["layer"] for b in zeros["border_reach"]} == set(zeros["layers"])


def test_probe_position_refuses_inputs_it_cannot_fit(tmp_path, capsys):
    rc = cli.main(["probe", "--model", "resnet3d_18", "--size", "16", "--frames", "4",
                   "--max-shift", "0", "--position", "--out", str(tmp_path / "p")])
    assert rc != 0
    assert "--position needs a 2-D model of RGB images" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()  # refused before anything ran
