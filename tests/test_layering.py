"""The house rules of ../shared/DESIGN.md, enforced: which way imports run, and no pickle anywhere."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vqladder"

# package -> packages it must never import ("Which way imports run" in DESIGN.md): the core floors, bottom up
# (errors/config/io/checkpoint -> nn -> quantize -> models -> train, eval -> report, with data beside), never import
# upward or into a domain; the domains (text, planning, video, embed) import the core and never each other; only the
# CLI imports the domains. Top-level modules (io, config, errors, checkpoint) are plumbing every layer may use.
DOMAINS = {"text", "planning", "video", "embed"}
NEVER = {
    "quantize": {"models", "train", "data", "eval", "report", "cli"} | DOMAINS,
    "nn": {"models", "train", "data", "eval", "report", "cli", "quantize"} | DOMAINS,
    "models": {"train", "cli", "report", "data", "eval"} | DOMAINS,
    "data": {"models", "eval", "train", "report", "cli"} | DOMAINS,
    "eval": {"train", "cli", "report"} | DOMAINS,
    "train": {"cli", "report", "eval"} | DOMAINS,
    "report": {"train", "cli", "models", "eval"} | DOMAINS,
    **{d: (DOMAINS - {d}) | {"cli"} for d in DOMAINS},
}
# a report view (report/, a domain's report.py or *_report.py) reads run directories: it never imports model,
# training or evaluation code, nor the domain modules that run them
VIEW_NEVER = {"models", "train", "eval", "quantize", "nn"}


def is_view(rel: tuple[str, ...]) -> bool:
    return rel[0] == "report" or rel[-1] == "report.py" or rel[-1].endswith("_report.py")


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
        if is_view(rel):
            bad += [f"{f.relative_to(SRC)}:{line} report view -> {target}" for line, target in imports(f)
                    if target in VIEW_NEVER]
            bad += [f"{f.relative_to(SRC)}:{line} report view -> {name}" for line, name in same_package(f)
                    if not is_view((rel[0], name + ".py")) and name not in ("__init__",)]
    assert not bad, "imports against DESIGN.md's layering:\n" + "\n".join(bad)


def same_package(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    """(line, module) for every import of a sibling module of the same package (``from .x import``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """The test above can fail: planted relative and absolute imports are resolved to their packages."""
    fake = tmp_path / "vqladder"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / "x.py").write_text("from ..train.trainer import Trainer\nfrom ..nn import layers\n"
                                          "import vqladder.cli\nfrom .. import data\n")
    assert imports(fake / "models" / "x.py", fake) == [(1, "train"), (2, "nn"), (3, "cli"), (4, "data")]
    (fake / "planning").mkdir()
    (fake / "planning" / "report.py").write_text("from .planners import FlatPlanner\nfrom ..video import data\n")
    rel = ("planning", "report.py")
    assert is_view(rel) and imports(fake / "planning" / "report.py", fake) == [(1, "planning"), (2, "video")]
    assert "video" in NEVER["planning"] and same_package(fake / "planning" / "report.py", fake) == [(1, "planners")]


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


def test_the_test_tree_mirrors_the_source():
    """tests/<package>/test_<module>.py tests src/vqladder/<package>/<module>.py (tests/test_<module>.py a top-level
    module, tests/<package>/test_<package>.py the package's ``__init__``); the only other test modules check the
    project as a whole."""
    tests = Path(__file__).resolve().parent
    project_wide = {"test_doctests.py", "test_layering.py", "test_readme_commands.py", "test_bad_inputs.py",
                    "test_docs.py"}
    orphans = []
    for p in sorted(tests.rglob("test_*.py")):
        rel = p.relative_to(tests)
        if rel.name in project_wide and len(rel.parts) == 1:
            continue
        module = SRC.joinpath(*rel.parts[:-1], rel.name.removeprefix("test_"))
        package_init = len(rel.parts) == 2 and rel.name == f"test_{rel.parts[0]}.py"
        if not module.is_file() and not (package_init and SRC.joinpath(rel.parts[0], "__init__.py").is_file()):
            orphans.append(str(rel))
    assert not orphans, f"test modules with no source module of that name: {orphans}"
