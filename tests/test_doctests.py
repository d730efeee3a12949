"""The runnable examples in the public API's docstrings run, and say what they show."""

import doctest
import importlib

import pytest

MODULES = ["vqladder", "vqladder.quantize.fsq", "vqladder.quantize.vq", "vqladder.quantize.qinco",
           "vqladder.models.compressor", "vqladder.text.geometry", "vqladder.models.lm", "vqladder.train.trainer",
           "vqladder.data.shards", "vqladder.config", "vqladder.text.compressor"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0, f"{name} has no runnable example"
    assert res.failed == 0


def test_the_public_api_is_exported_and_documented():
    import vqladder

    missing = [n for n in vqladder.__all__ if n not in ("__version__",) and not (getattr(vqladder, n).__doc__ or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_importing_the_package_loads_no_torch():
    """The names load on first use: ``import vqladder`` (and so ``vqladder --help``) stays light."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, vqladder; print('torch' in sys.modules); "
                          "vqladder.FSQ; print('torch' in sys.modules)"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_the_readme_python_section_runs(tmp_path, monkeypatch):
    """The README's Python API blocks, run in order in a fresh directory, as a reader would paste them."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for code in blocks:
        exec(compile(code, "README.md", "exec"), scope)
    assert scope["res"]["step"] == 6 and scope["codes"].shape == (10, 4) and scope["tokens"].shape == (3, 10)
