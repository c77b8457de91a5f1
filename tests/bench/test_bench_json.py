"""``jaxeq bench --json``: each finished row is on disk at once (a crash keeps them), and a file
of other options is never replaced without --overwrite."""
import json

import pytest

from jaxeq import bench, cli
from jaxeq.cli import bench as bench_cli


@pytest.fixture
def fake_run(monkeypatch):
    """bench.run logs ``n`` rows, then raises ``crash`` if set; the environment is left alone."""
    plan = {"n": 3, "crash": None}
    seen_on_disk = []

    def run(groups, *, log, **_):
        rows = []
        for i in range(plan["n"]):
            r = {"row": f"unit/{i}", "skipped": None, "jaxeq_median_s": None, "extra": {}}
            log(r)
            rows.append(r)
            seen_on_disk.append(len(json.load(open(plan["path"]))))
        if plan["crash"]:
            raise plan["crash"]
        for r in rows:
            r["machine"] = {"host": "unit"}
        return rows

    monkeypatch.setattr(bench, "run", run)
    monkeypatch.setattr(bench, "configure_environment", lambda *a, **k: {"XLA_FLAGS": ""})
    plan["seen"] = seen_on_disk
    return plan


def _bench(path, *extra):
    args, _ = cli.parse_args(["bench", "data", "--json", str(path), *extra])
    return bench_cli.main(args)


def test_each_row_is_written_as_it_finishes_and_survives_a_crash(tmp_path, fake_run):
    path = tmp_path / "rows.json"
    fake_run.update(path=path, crash=RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        _bench(path)
    assert fake_run["seen"] == [1, 2, 3]  # the file after each row
    rows = json.load(open(path))
    assert [r["row"] for r in rows] == ["unit/0", "unit/1", "unit/2"]
    assert rows[0]["bench_args"]["group"] == "data" and rows[0]["bench_args"]["repeats"] == 5
    assert not list(tmp_path.glob("*.tmp"))
    # the same command again replaces it (resume = run it again); the end adds 'machine'
    fake_run.update(crash=None, n=2)
    assert _bench(path) == 0
    rows = json.load(open(path))
    assert len(rows) == 2 and rows[0]["machine"] == {"host": "unit"}


@pytest.mark.parametrize("existing", [
    "[]x",                                               # not JSON
    '{"rows": []}',                                       # not a list of rows
    '[{"row": "unit/0"}]',                                # rows of an older bench, no options
])
def test_a_file_of_something_else_is_refused_before_timing(tmp_path, fake_run, existing):
    path = tmp_path / "rows.json"
    path.write_text(existing)
    fake_run.update(path=path)
    with pytest.raises(ValueError, match=f"--json {path} exists and holds no rows of these "
                                         f"options .* pass --overwrite to replace it"):
        _bench(path)
    assert path.read_text() == existing and fake_run["seen"] == []
    assert _bench(path, "--overwrite") == 0 and len(json.load(open(path))) == 3


def test_rows_of_other_options_are_refused_with_one_error_line(tmp_path, fake_run, capsys):
    path = tmp_path / "rows.json"
    fake_run.update(path=path)
    assert _bench(path) == 0
    before = path.read_text()
    code = cli.guarded(lambda: _bench(path, "--repeats", "7"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith(f"error: --json {path} exists")
    assert "'repeats': 7" in err[0] and path.read_text() == before
    assert _bench(path, "--repeats", "7", "--overwrite") == 0
    assert json.load(open(path))[0]["bench_args"]["repeats"] == 7


def test_help_documents_overwrite(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--overwrite" in out and "rewritten after every finished row" in out


def test_rows_written_before_an_option_existed_count_as_its_default(tmp_path, fake_run):
    path = tmp_path / "rows.json"
    fake_run.update(path=path)
    assert _bench(path) == 0
    rows = json.load(open(path))
    assert rows[0]["bench_args"]["tf32"] is False
    for r in rows:
        del r["bench_args"]["tf32"]  # as a file from before --tf32
    path.write_text(json.dumps(rows))
    assert _bench(path) == 0  # the same command: replaced
    with pytest.raises(ValueError, match="holds no rows of these options"):
        _bench(path, "--device", "gpu", "--tf32")  # other option values: refused


def test_tf32_without_a_gpu_is_refused(tmp_path, fake_run):
    with pytest.raises(ValueError, match=r"^--tf32 applies to --device gpu only"):
        _bench(tmp_path / "rows.json", "--tf32")
