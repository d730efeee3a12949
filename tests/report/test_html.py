"""``vqladder.report.html``: a self-contained HTML page per run kind, checked as data and in headless Chromium."""

import contextlib
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from helpers import tiny_run_config

from vqladder.cli import main
from vqladder.data import TokenShards, prepare
from vqladder.errors import VQLadderError
from vqladder.io import own_dir
from vqladder.models import load_model
from vqladder.report.html import build_report, markdown_to_html
from vqladder.text.compressor import train_run
from vqladder.text.sweep import aggregate


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import make_text

    d = tmp_path_factory.mktemp("report")
    (d / "c.txt").write_text(make_text(8000))
    data = prepare(str(d / "c.txt"), "bytes", d / "data", block_size=512).dir
    cfg = tiny_run_config(data, d / "runs", name="r", steps=30)
    train_run(cfg)
    return cfg.run_dir


def _blob(html: str) -> dict:
    m = re.search(r'<script id=data type=application/json>(.*?)</script>', html, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser():
    if not CHROMIUM:
        if os.environ.get("VQLADDER_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (CI installs it with apt: see .ci/run)")
        pytest.skip("no chromium on this machine (apt install chromium)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    return sync_playwright, CHROMIUM


@contextlib.contextmanager
def _page(**kw):
    """A headless Chromium page; yields (page, errors): console errors and uncaught page errors, as they come."""
    sync_playwright, exe = _browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(**kw)
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield page, errors
        finally:
            browser.close()


def test_run_report_is_self_contained_and_holds_the_right_reconstructions(run, tmp_path):
    out = build_report(run, tmp_path / "r.html", max_chunks=5)
    html = out.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?https?:", html)   # nothing fetched
    data = _blob(html)
    assert data["kind"] == "run" and len(data["recon"]) == 5
    # the rows are the model's own argmax decoding of those held-out chunks
    model = load_model(run)[0]
    val = np.asarray(TokenShards(data["config"]["data"]["path"]).val)
    n = model.config.in_len
    for row in data["recon"][:2]:
        x = torch.from_numpy(val[row["chunk"] * n:(row["chunk"] + 1) * n].astype(np.int64))[None]
        assert row["orig"] == x[0].tolist()
        assert row["pred"] == model.decode(model.encode(x)).argmax(-1)[0].tolist()
    ex = data["explorer"]
    assert sum(c["count"] for c in ex["codes"]) == ex["positions"] == ex["chunks"] * model.config.out_len
    assert all(c["count"] == sum(k for _, k in c["spans"]) or len(c["spans"]) == 8 for c in ex["codes"])
    assert [m["step"] for m in data["metrics"]][:2] == [5, 10]


def test_sweep_and_experiment_directories_get_a_report(tmp_path, run):
    sweep = tmp_path / "sw"
    (sweep / "cells").mkdir(parents=True)
    shutil.copytree(run, sweep / "cells" / "m8-k256-fsq-s0")
    (sweep / "sweep.yaml").write_text("name: sw\n")
    (sweep / "references.json").write_text(json.dumps({"lm_bits": 2.5, "trivial_acc": 0.1, "zstd_whole": 3.0,
                                                       "zstd_chunk": 4.0, "unigram_bits": 5.0, "utf8_raw": 8.0}))
    with pytest.raises(VQLadderError, match="aggregate it first"):  # the report reads what aggregation wrote
        build_report(sweep)
    aggregate(sweep, make_plots=False)
    data = _blob(build_report(sweep).read_text())
    assert data["kind"] == "sweep" and data["cells"][0]["cell"] == "m8-k256-fsq-s0"
    exp = tmp_path / "exp"
    own_dir(exp, "experiment")  # an experiment directory the tool made
    (exp / "plan.md").write_text("# Planning\n\n| a | b |\n|---|---|\n| 1 | <x> |\n")
    data = _blob(build_report(exp).read_text())
    assert data["kind"] == "experiment" and "<td>&lt;x&gt;</td>" in data["markdown"][0]["html"]


def test_markdown_tables_and_escaping():
    h = markdown_to_html("## T\n\ntext **b** `c`\n\n| x | y |\n|---|:-:|\n| <s> | 2 |\nafter")
    assert "<h4>T</h4>" in h and "<b>b</b>" in h and "<code>c</code>" in h
    assert "<th>x</th>" in h and "<td>&lt;s&gt;</td>" in h and "<p>after</p>" in h


def test_report_command_prints_the_path(run, tmp_path, capsys):
    assert main(["report", str(run), "-o", str(tmp_path / "x.html"), "--chunks", "2"]) == 0
    assert str(tmp_path / "x.html") in capsys.readouterr().out


def test_report_in_headless_chromium(run, tmp_path):
    """No console errors; the code explorer answers a text search; reconstruction rows mark exactly the wrong
    tokens; the screenshot is not blank."""
    _browser()                                        # skip early without a browser
    out = build_report(run, tmp_path / "r.html", max_chunks=6)
    data = _blob(out.read_text())
    with _page(viewport={"width": 1200, "height": 900}) as (page, errors):
        page.route("**/*", lambda r: r.abort() if not r.request.url.startswith(("file:", "data:")) else r.continue_())
        page.goto(out.as_uri())
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=20000)
        page.wait_for_selector("#curves svg", timeout=20000)        # vega-embed drew the charts offline
        # reconstructions: the marked tokens are exactly the positions where the decoding differs
        rows = page.locator(".recon-row")
        assert rows.count() == 6
        for k in range(3):
            marked = [int(v) for v in rows.nth(k).locator(".pred .wrong").evaluate_all(
                "els => els.map(e => e.dataset.pos)")]
            r = data["recon"][k]
            assert marked == [i for i, (a, b) in enumerate(zip(r["orig"], r["pred"])) if a != b]
        # the explorer: a phrase search lists codes whose spans contain it, an id search opens that code
        span = data["explorer"]["codes"][0]["spans"][0][0]
        phrase = span.strip()[:3] or span
        page.fill("#explorer-search", phrase)
        listed = [int(v) for v in page.locator("#code-list .code-row").evaluate_all(
            "els => els.map(e => e.dataset.code)")]
        want = [c["id"] for c in data["explorer"]["codes"] if any(phrase.lower() in s.lower() for s, _ in c["spans"])]
        assert listed and sorted(listed) == sorted(want[:300])
        cid = data["explorer"]["codes"][1]["id"]
        page.fill("#explorer-search", f"#{cid}")
        assert page.locator("#detail-title").inner_text() == f"code #{cid}"
        page.evaluate("window.scrollTo(0, 0)")
        shot = tmp_path / "shot.png"
        page.screenshot(path=str(shot))
    assert not errors, errors
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert img.std() > 10 and (img < 128).mean() > 0.005       # text and charts, not a blank page


def test_tensorboard_scalars_match_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    from conftest import make_text
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tmp_path / "c.txt").write_text(make_text(6000))
    data = prepare(str(tmp_path / "c.txt"), "bytes", tmp_path / "data", block_size=512).dir
    cfg = tiny_run_config(data, tmp_path / "runs", name="tb", steps=12, tensorboard=True, mfu=False)
    train_run(cfg)
    ea = EventAccumulator(str(cfg.run_dir / "tensorboard"))
    ea.Reload()
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]
    got = [(e.step, e.value) for e in ea.Scalars("train/loss")]
    assert [s for s, _ in got] == [s for s, _ in logged]
    assert np.allclose([v for _, v in got], [v for _, v in logged], rtol=1e-5)
    assert "val/acc" in ea.Tags()["scalars"]


def test_planning_report_steps_an_episode(tmp_path):
    """The episode viewer: the maze is drawn, stepping moves the agent along the recorded cells, code starts
    are marked."""
    _browser()                                        # skip early without a browser
    d = tmp_path / "plan"
    own_dir(d, "experiment")  # an experiment directory the tool made
    maze = ["#####", "#. .#", "# # #", "#. .#", "#####"]
    ep = {"task": 0, "contender": "ladder", "method": "beam", "scorer": "verifier", "budget": 32, "evaluations": 30,
          "maze": maze, "start": [0, 0], "goal": [1, 1], "moves": "RD..", "cells": [[0, 0], [0, 1], [1, 1]],
          "valid": True, "reached": True, "code_starts": [0, 2]}
    (d / "episodes.json").write_text(json.dumps([ep]))
    (d / "results.md").write_text("# Planning\n")
    out = build_report(d)
    with _page() as (page, errors):
        page.goto(out.as_uri())
        page.wait_for_selector("#episode-maze")
        assert page.locator("#episode-maze").inner_text().splitlines()[1] == "#@ .#"
        page.locator("#episode-step").fill("2")
        rows = page.locator("#episode-maze").inner_text().splitlines()
        assert rows[1][3] == "*" and rows[3][3] == "@"            # walked (0,1), now at (1,1)
        starts = page.locator("#episode-moves .code-start").evaluate_all("els => els.map(e => +e.dataset.i)")
        assert starts == [0, 2] and "goal reached" in page.locator("#episode-label").inner_text()
    assert not errors, errors


def test_video_report_steps_through_rollouts(tmp_path):
    _browser()                                        # skip early without a browser
    d = tmp_path / "video"
    own_dir(d, "experiment")  # an experiment directory the tool made
    png = lambda i: f"data:image/png;base64,frame{i}"        # the viewer only places them
    clip = {"context": [png(0), png(1)], **{k: [png(f"{k}{i}") for i in range(3)]
                                             for k in ("truth", "latent", "pixel", "copy_last")}}
    (d / "rollouts.json").write_text(json.dumps({"context": 2, "horizon": 3, "clips": [clip]}))
    (d / "results.md").write_text("# Video\n")
    out = build_report(d)
    with _page() as (page, _):
        page.goto(out.as_uri())
        page.wait_for_selector("#rollout-frames")
        page.locator("#rollout-step").fill("2")
        src = page.locator("#rollout-frames figure[data-kind=latent] img").get_attribute("src")
        assert src.endswith("framelatent2") and "t = 5" in page.locator("#rollout-label").inner_text()


def test_ladder_report_reconstructs_every_level(tmp_path):
    """A ladder's report: held-out chunks decoded from every level, equal to Ladder.decode(Ladder.encode(…)), and
    in the browser the level picker shows each level's rows with exactly the wrong tokens marked."""
    from conftest import make_text
    from helpers import tiny_ladder_config

    from vqladder.text.ladder import Ladder
    from vqladder.text.ladder_recipe import train_ladder

    (tmp_path / "c.txt").write_text(make_text(8000))
    prepare(str(tmp_path / "c.txt"), "bpe:300", tmp_path / "data", block_size=512)
    cfg = tiny_ladder_config(tmp_path / "data", tmp_path / "runs", steps=10)
    train_ladder(cfg, log=lambda m: None)
    out = build_report(cfg.dir, max_chunks=4)
    data = _blob(out.read_text())
    assert data["kind"] == "ladder" and [lv["level"] for lv in data["levels"]] == [1, 2, 3]
    lad = Ladder.load(cfg.dir)
    x = np.concatenate([np.asarray(r["orig"]) for r in data["levels"][1]["rows"]])
    want = lad.decode(lad.encode(x, 2), 2)
    assert np.concatenate([r["pred"] for r in data["levels"][1]["rows"]]).tolist() == want.tolist()
    _browser()                                        # skip early without a browser
    with _page() as (page, _):
        page.goto(out.as_uri())
        page.wait_for_selector("#level-rows .recon-row")
        page.select_option("#level-select", "1")
        marked = page.locator("#level-rows .recon-row").first.locator(".pred .wrong").evaluate_all(
            "els => els.map(e => +e.dataset.pos)")
        r = data["levels"][1]["rows"][0]
        assert marked == [i for i, (a, b) in enumerate(zip(r["orig"], r["pred"])) if a != b]


def test_embedding_report_recall_chart_and_concept_search(tmp_path):
    _browser()                                        # skip early without a browser
    d = tmp_path / "embed"
    own_dir(d, "experiment")  # an experiment directory the tool made
    rows = [{"method": m, "bytes": b, "recall@1": 0.1 * i, "recall@10": 0.1 * i + 0.05, "recall@100": 0.2 * i}
            for i, (m, b) in enumerate([("faiss-pq", 8), ("faiss-pq", 16), ("ours-prefix-rvq", 8),
                                        ("ours-prefix-rvq", 16)])]
    rows.append({"method": "binary", "bytes": 4, "note": "does not fit"})
    concepts = [{"code": 7, "size": 30, "texts": ["the river sings", "a song of rivers"]},
                {"code": 12, "size": 20, "texts": ["seven wizards judge", "boxing matches"]}]
    (d / "results.json").write_text(json.dumps({"rows": rows, "concepts": concepts[:1], "concept_view": concepts}))
    (d / "results.md").write_text("# Embeddings\n")
    out = build_report(d)
    with _page() as (page, errors):
        page.goto(out.as_uri())
        page.wait_for_selector("#recall svg", timeout=20000)
        assert page.locator("#concept-list .concept").count() == 2
        page.fill("#concept-search", "WIZARD")
        assert page.locator("#concept-list .concept").evaluate_all("els => els.map(e => +e.dataset.code)") == [12]
        page.fill("#concept-search", "#7")
        assert page.locator("#concept-list .concept").evaluate_all("els => els.map(e => +e.dataset.code)") == [7]
    assert not errors, errors

