"""RESULTS.md's tables are what the committed results files render to."""
import json
import shutil
from pathlib import Path

import pytest

from jaxeq.experiments import results_doc

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "experiments" / "RESULTS.md"


def test_results_md_tables_equal_the_committed_results():
    assert results_doc.sync(DOC, write=False) == []


def test_every_committed_results_file_has_its_table_in_results_md():
    committed = {f"results/{p.parent.name}" for p in (ROOT / "experiments" / "results").glob("*/results.json")}
    assert committed and committed <= set(results_doc.marked_folders(DOC))


def test_a_changed_number_is_found_and_rewritten(tmp_path):
    src = ROOT / "experiments" / "results" / "e2_red_green_quick"
    shutil.copytree(src, tmp_path / "results" / "rg")
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n\n<!-- table: results/rg -->\n| stale |\n<!-- /table -->\n\nend\n")
    assert results_doc.sync(doc, write=False) == ["results/rg"]
    assert results_doc.sync(doc) == ["results/rg"] and results_doc.sync(doc, write=False) == []
    assert "| same_zero | 99.8 ± 0.1 | 97.5 ± 0.2 (n=3) |" in doc.read_text()
    # a number edited in the results file shows up as a difference
    path = tmp_path / "results" / "rg" / "results.json"
    summary = json.loads(path.read_text())
    for r in summary["records"]:
        if r["cell"]["variant"] == "same_zero":
            r["metrics"]["similar"] = 12.0
    path.write_text(json.dumps(summary))
    assert results_doc.main(["--check", str(doc)]) == 1
    assert "97.5 ± 0.2" in doc.read_text()  # --check writes nothing


def test_a_marked_folder_without_results_is_a_clear_error(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- table: results/none -->\n|x|\n<!-- /table -->\n")
    with pytest.raises(FileNotFoundError, match="results_dir has no results.json"):
        results_doc.sync(doc)


def test_an_empty_block_is_filled_without_swallowing_the_text_after_it(tmp_path):
    src = ROOT / "experiments" / "results" / "e2_red_green_quick"
    shutil.copytree(src, tmp_path / "results" / "rg")
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- table: results/rg -->\n<!-- /table -->\n\nkeep me\n\n"
                   "<!-- table: results/rg -->\n<!-- /table -->\n")
    assert results_doc.sync(doc) == ["results/rg", "results/rg"]
    text = doc.read_text()
    assert "keep me" in text and text.count("| same_zero |") == 2
    assert results_doc.sync(doc, write=False) == []


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from jaxeq import atomic
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "curve.png"
    atomic.save_figure(fig, path, dpi=50)
    good = path.read_bytes()
    assert good[:8] == b"\x89PNG\r\n\x1a\n"

    def fail(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(fig, "savefig", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic.save_figure(fig, path)
    assert path.read_bytes() == good and list(tmp_path.iterdir()) == [path]  # old file kept
    plt.close(fig)
