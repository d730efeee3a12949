"""The user documents: the README's summary numbers are on the pages it links, no document names an issue, every
link resolves (``scripts/check_docs.py``, run here so CI runs it); the README stays a page a reader gets through."""

import importlib.util
import shutil

import pytest
from helpers import ROOT


def _checker():
    spec = importlib.util.spec_from_file_location("check_docs", ROOT / "scripts" / "check_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_documents_pass_the_docs_check():
    assert _checker().check(ROOT) == []


def test_the_docs_check_catches_drift_issue_numbers_and_dead_links(tmp_path):
    """A planted copy: a summary number that is not on its page, an issue number, a dead link: each is caught."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png", "*.html"))
    (tmp_path / "CHANGELOG.md").write_text("")
    readme = (tmp_path / "README.md").read_text()
    assert "7.410 ± 0.097" in readme
    (tmp_path / "README.md").write_text(readme.replace("7.410 ± 0.097", "7.310 ± 0.097", 1)
                                        .replace("## Documentation", "## Documentation\n\nSee issue #12 and "
                                                 "[this](docs/missing.md)."))
    problems = _checker().check(tmp_path)
    assert any("7.310 is not on docs/results/ladder.md" in p for p in problems), problems
    assert any("names an issue ('issue #12')" in p for p in problems)
    assert any("docs/missing.md points to nothing" in p for p in problems)


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 260


def test_the_variable_seeds_script_averages_the_cells_of_the_pages_it_reads(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("variable_seeds", ROOT / "scripts" / "variable_seeds.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    page = (ROOT / "docs" / "variable" / "variable-synth.md").read_text()
    other = tmp_path / "other.md"  # the same page with entropy at target 2 reconstructing 0.100 more
    other.write_text(page.replace("| entropy | 2 | 1.83 | 6.208 | 0.761 | 0.688 |", "| entropy | 2 | 1.83 | 6.208 | 0.761 | 0.788 |"))
    assert mod.main([str(ROOT / "docs" / "variable" / "variable-synth.md"), str(other)]) == 0
    rows = {tuple(r.split(" | ")[:3]): r for r in capsys.readouterr().out.splitlines() if r.startswith("| ")}
    row = rows[("| entropy", "2", "2")]
    assert "| 0.738 ± 0.071 | 0.595 ± 0.000 | 0.143 ± 0.071 |" in row
    assert "| 0.464 ± 0.000 |" in rows[("| fixed", "2", "2")]
    bad = tmp_path / "bad.md"
    bad.write_text("# not a results page\n")
    assert mod.main([str(bad)]) == 2


def test_the_embed_plot_script_merges_runs_of_one_split_and_refuses_others(tmp_path):
    spec = importlib.util.spec_from_file_location("embed_plot", ROOT / "scripts" / "embed_plot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    split = {"texts": 10, "model": "minilm", "corpora": ["builtin"], "database": 5, "queries": 2, "train": 3,
             "metric": "cosine"}
    main = {**split, "rows": [{"method": "faiss-rq", "bytes": 8, "recall@10": 0.5},
                              {"method": "faiss-lsq", "bytes": 16, "note": "n/a"}]}
    extra = {**split, "rows": [{"method": "faiss-rq", "bytes": 8, "recall@10": 0.9},  # measured twice: first run's
                               {"method": "faiss-lsq", "bytes": 16, "recall@10": 0.7}]}
    rows = mod.merge([main, extra])
    assert [(r["method"], r["bytes"], r["recall@10"]) for r in rows] == [("faiss-rq", 8, 0.5), ("faiss-lsq", 16, 0.7)]
    with pytest.raises(ValueError, match="train"):
        mod.merge([main, {**extra, "train": 4}])
    assert mod.main([str(tmp_path / "missing"), "--out", str(tmp_path / "p.png")]) == 2
