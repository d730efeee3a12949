"""The user documents: the README's summary numbers are on the pages it links, no document names an issue, every
link resolves (``scripts/check_docs.py``, run here so CI runs it); the README stays a page a reader gets through."""

import importlib.util
import shutil

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
