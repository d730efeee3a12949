import os
import random
import sys
from pathlib import Path

import pytest
import torch

# `make test` runs the suite in two pytest-xdist workers on a 2-core machine: each worker (and every subprocess it
# starts, through OMP_NUM_THREADS) computes on one thread, so the two never fight for the cores; a plain `pytest`
# run keeps two threads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)

# the test tree mirrors src/vqladder (tests/<package>/test_<module>.py); its shared modules (helpers,
# bad_input_cases, fuzz_cases, this conftest) are importable from every folder
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches "
         "in the old town hall and every night the river sings a song about distant mountains").split()


def make_text(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_words // 12):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(12)) + ".")
    return "\n".join(lines) + "\n"


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    p = tmp_path / "tiny.txt"
    p.write_text(make_text(6000))
    return p


@pytest.fixture
def shakespeare() -> Path:
    if not SHARED.is_file():
        pytest.skip("../shared/data/tinyshakespeare.txt not available")
    return SHARED


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
    os.environ.pop("RANK", None)


@pytest.fixture(scope="session")
def bad_context(tmp_path_factory):
    """One prepared tiny corpus, trained run and ladder, and the broken files the bad-input and ownership tests
    point at (tests/bad_input_cases.py), made once per session."""
    from bad_input_cases import make_context

    return make_context(tmp_path_factory.mktemp("ctx"))


@pytest.fixture(scope="module")
def ctx(bad_context):
    """The session's bad-input context, under the name the bad-input and ownership tests use."""
    return bad_context


@pytest.fixture
def data(tmp_path, tiny_corpus):
    """The tiny corpus prepared as bytes (a function-scoped directory)."""
    from vqladder.data import prepare

    return prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512).dir


@pytest.fixture
def iid_data(tmp_path):
    """A planted corpus: 40,000 characters drawn independently and uniformly from "abcd", prepared as bytes. No
    token says anything about another, so a decoder beats the most-frequent-token floor (about 0.25) only with what
    its codes carry."""
    from vqladder.data import prepare

    rng = random.Random(0)
    (tmp_path / "iid.txt").write_text("".join(rng.choice("abcd") for _ in range(40_000)))
    return prepare(str(tmp_path / "iid.txt"), "bytes", tmp_path / "iid", block_size=512).dir
