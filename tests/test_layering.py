"""The house rules of ../shared/DESIGN.md, enforced: which way imports run, and no pickle anywhere."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vqladder"

# package -> packages it must never import ("Which way imports run" in DESIGN.md). Top-level modules (io, config,
# errors, checkpoint) are shared plumbing that every layer may use.
NEVER = {
    "quantize": {"models", "train", "data", "eval", "report", "experiments", "ladder", "cli"},
    "nn": {"models", "train", "data", "eval", "report", "experiments", "ladder", "cli", "quantize"},
    "models": {"train", "cli", "experiments", "ladder", "report"},
    "data": {"models", "eval", "train", "experiments", "ladder", "report", "cli"},
    "eval": {"train", "experiments", "cli", "report"},
    "report": {"train", "experiments", "cli"},
    "ladder": {"train", "experiments", "cli"},
    "train": {"experiments", "cli", "report"},
    "experiments": {"cli"},
}


def imports(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    """(line, first package under vqladder) for every vqladder import in ``path``, relative ones resolved."""
    rel = path.relative_to(root).parts
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("vqladder"):
                mod = node.module[len("vqladder."):]
            else:
                continue
            out += [(node.lineno, m.split(".")[0]) for m in ([mod] if mod else [a.name for a in node.names])]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("vqladder.")]
    return out


def test_imports_run_one_way():
    bad = []
    for f in sorted(SRC.rglob("*.py")):
        rel = f.relative_to(SRC).parts
        pkg = rel[0][:-3] if len(rel) == 1 else rel[0]
        bad += [f"{f.relative_to(SRC)}:{line} {pkg} -> {target}" for line, target in imports(f)
                if target in NEVER.get(pkg, ())]
    assert not bad, "imports against DESIGN.md's layering:\n" + "\n".join(bad)


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """The test above can fail: planted relative and absolute imports are resolved to their packages."""
    fake = tmp_path / "vqladder"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / "x.py").write_text("from ..train.trainer import Trainer\nfrom ..nn import layers\n"
                                          "import vqladder.cli\nfrom .. import data\n")
    assert imports(fake / "models" / "x.py", fake) == [(1, "train"), (2, "nn"), (3, "cli"), (4, "data")]


def test_nothing_is_unpickled():
    """Weights are safetensors; torch.load only with weights_only=True; numpy never with allow_pickle=True."""
    bad = []
    for f in sorted(SRC.rglob("*.py")):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"weights_only\s*=\s*False|allow_pickle\s*=\s*True|\bimport pickle\b", line):
                bad.append(f"{f.relative_to(SRC)}:{i}: {line.strip()}")
            if "torch.load(" in line and "weights_only=True" not in line:
                bad.append(f"{f.relative_to(SRC)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)
