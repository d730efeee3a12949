"""``vqladder.text.ladder_recipe``: train-ladder end to end (text, codes, multi-exit), resumed and reloaded."""

import contextlib
import io

import numpy as np
import pytest

from vqladder.cli import main
from vqladder.errors import VQLadderError
from vqladder.models import LMConfig
from vqladder.text.ladder import Ladder


def _train_tiny_ladder(tmp_path_factory, name: str, mode: str, steps: int = 20, **set_):
    """A tiny ladder trained end to end on a small synthetic corpus: (config, results, logs)."""

    from conftest import make_text
    from helpers import tiny_ladder_config

    from vqladder.data import prepare
    from vqladder.text.ladder_recipe import train_ladder

    tmp = tmp_path_factory.mktemp(name)
    corpus = tmp / "c.txt"
    corpus.write_text(make_text(6000))
    prepare(str(corpus), "bytes", tmp / "data", block_size=512, progress=False)
    cfg = tiny_ladder_config(tmp / "data", tmp / "runs", steps=steps, mode=mode)
    for key, v in set_.items():
        obj, *path = key.split("__")
        target = getattr(cfg, obj) if path else cfg
        setattr(target, path[0] if path else obj, v)
    logs = []
    res = train_ladder(cfg, log=logs.append)
    return cfg, res, logs


@pytest.fixture(scope="module")
def trained_ladder(tmp_path_factory):
    return _train_tiny_ladder(tmp_path_factory, "ladder", "codes")


@pytest.fixture(scope="module")
def trained_text_ladder(tmp_path_factory):
    cfg, res, _ = _train_tiny_ladder(tmp_path_factory, "tladder", "text", use_judge=True, judge_train__steps=10,
                                     judge__d_model=32, judge__n_heads=2, judge__n_layers=1, skip_level=2,
                                     flat_rivals=[LMConfig(d_model=32, n_heads=2, n_layers=2)], upsampler_steps=[7])
    return cfg, res


def test_train_ladder_writes_tables_and_reloads_identically(trained_ladder):
    cfg, res, _ = trained_ladder
    d = cfg.dir
    assert [r["level"] for r in res["levels"]] == [1, 2, 3]
    from vqladder.data import TokenShards

    lad0 = Ladder.load(d)
    tokens = np.asarray(TokenShards(cfg.data.path).val)[:8 * lad0.chunk_len(0)].astype(np.int64)  # eval.max_chunks 8
    for k, r in enumerate(res["levels"], 1):  # each level's end-to-end accuracy and usage, recomputed by hand
        codes = lad0.encode(tokens, level=k)
        assert r["e2e_acc_vq"] == pytest.approx(float((lad0.decode(codes, k, 0, method="vq") == tokens).mean()))
        assert r["usage"] == pytest.approx(len(np.unique(codes)) / lad0.vocab(k))
    assert res["bits"]["hierarchical"] > 0 and res["bits"]["flat"] > 0
    assert set(res["bits"]["components"]) == {"prior", "upsampler1", "upsampler2", "upsampler3"}
    # one row per level in the per-level table and one in the levels-that-listen table
    assert sum(line.startswith("| 3 |") for line in (d / "results.md").read_text().splitlines()) == 2
    assert "## Levels that listen" in (d / "results.md").read_text() and len(res["listen"]) == 3
    # save / load round trip: the reloaded ladder gives exactly the codes computed before saving
    lad = Ladder.load(d, need_prior=True, need_upsamplers=True)
    val = np.load(d / "codes" / "level1.val.npy")
    from vqladder.data import TokenShards

    tokens = np.asarray(TokenShards(cfg.data.path).val)
    for k in (1, 2, 3):
        stored = np.load(d / "codes" / f"level{k}.val.npy").astype(np.int64)
        n = len(lad.encode(tokens[:lad.chunk_len(0) * 20], level=k))
        assert np.array_equal(lad.encode(tokens[:lad.chunk_len(0) * 20], level=k), stored[:n])
    assert len(val) > 0
    out = lad.generate("the quick brown fox", chunks=1, seed=1)
    assert len(out["levels"][0]) == lad.chunk_len(0) and isinstance(out["text"], str)


def test_train_ladder_resumes_per_stage(trained_ladder):
    import shutil

    from vqladder.text.ladder_recipe import train_ladder

    cfg, res, _ = trained_ladder
    shutil.rmtree(cfg.dir / "prior")  # as if killed before the prior finished
    logs = []
    res2 = train_ladder(cfg, log=logs.append)
    assert sum("done, skipped" in m for m in logs) == 7  # 3 levels, 3 upsamplers, flat
    assert any(m.startswith("prior") and "training" in m for m in logs)
    assert res2["levels"] == res["levels"]


def test_generate_cli_shows_levels(trained_ladder):
    cfg, _, _ = trained_ladder
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["generate", str(cfg.dir), "--prompt", "the river", "--show-levels", "--chunks", "2"]) == 0
    text = out.getvalue()
    assert "[level 3:" in text and "[level 1:" in text and "[level 0: text]" in text
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["generate", str(cfg.dir), "--beam", "2", "--decoder", "vq"]) == 0
    enc = io.StringIO()
    with contextlib.redirect_stdout(enc), contextlib.redirect_stderr(io.StringIO()):
        assert main(["ladder-encode", str(cfg.dir), "--level", "2", "--text", "the quick brown fox " * 4]) == 0
    codes = enc.getvalue().split()
    dec = io.StringIO()
    with contextlib.redirect_stdout(dec):
        assert main(["ladder-decode", str(cfg.dir), "--level", "2", "--codes", " ".join(codes)]) == 0
    assert len(dec.getvalue()) > 0


def test_text_ladder_trains_matches_the_flat_lm_and_reports_generation(trained_text_ladder):
    cfg, res = trained_text_ladder
    assert res["mode"] == "text" and [r["recon_input"] for r in res["levels"]] == ["tokens"] * 3
    assert all("gist_bow_f1" in r for r in res["levels"]) and 0 < res["floor_acc"] < 1
    m = res["matched"]
    # all parameters matched to what generation runs (prior + upsamplers), within one flat layer's worth
    from vqladder.models import CausalLM, LMConfig
    layer = sum(p.numel() for p in CausalLM(LMConfig(vocab_size=256, context=8, d_model=32, n_heads=2,
                                                      n_layers=1)).blocks[0].parameters())
    assert abs(m["flat_params"] - m["hierarchical_params"]) <= layer
    # training FLOPs counted per stage and the flat LM's steps set to match their sum
    assert m["hierarchical_train_flops"] == pytest.approx(sum(m["hierarchical_train_flops_by_stage"].values()))
    assert m["flat_train_flops"] == pytest.approx(m["hierarchical_train_flops"], rel=0.5)
    g = res["generation"]
    assert {"ladder_upsample", "ladder_vq", "flat", "held_out"} <= set(g)
    assert all(g[k]["tokens_per_s"] > 0 and g[k]["judge_bits_per_token"] > 0 for k in ("ladder_upsample", "flat"))
    assert all(0 < g[k]["distinct2"] <= 1 for k in ("ladder_upsample", "ladder_vq", "flat", "held_out"))
    md = (cfg.dir / "results.md").read_text()
    assert "## Generation: speed and sample quality" in md and "mode: text" in md
    lad = Ladder.load(cfg.dir, need_prior=True, need_upsamplers=True)
    assert lad.mode == "text"
    out = lad.generate("the river runs", chunks=2, seed=3)  # the prompt's last chunk is each upsampler's context
    assert len(out["levels"][0]) == 2 * lad.chunk_len(0) and len(out["levels"][1]) == 2 * lad.chunk_len(1)
    vq = lad.generate(None, chunks=1, method="vq")
    assert np.array_equal(vq["levels"][1], lad.encode(vq["levels"][0], 1))


def test_skip_level_likelihood_is_the_prior_the_upsamplers_above_and_a_token_decoder(trained_text_ladder):
    from vqladder.models import load_model
    from vqladder.text.ladder_eval import _chunk_nats
    from vqladder.text.ladder_stages import skip_geometry

    cfg, res = trained_text_ladder
    b = res["bits"]
    sk = b["skip_level"]
    assert sk["level"] == 2 and set(sk["components"]) == {"prior", "upsampler3", "skip2"}
    # levels 1 and 2's two-part terms are replaced by one token decoder from level-2 codes; the rest is shared
    assert sk["components"]["prior"] == b["components"]["prior"]
    assert sk["components"]["upsampler3"] == b["components"]["upsampler3"]
    assert sk["bits_per_token"] == pytest.approx(sum(sk["components"].values()))
    # the skip decoder: level-2 codes of a chunk -> the tokens under them, trained for upsampler 1's steps
    skip = load_model(cfg.dir / "skip2", "upsampler")[0]
    lad = Ladder.load(cfg.dir)
    assert (skip.config.parent_len, skip.config.length) == skip_geometry(lad, 2) == (4, 32)
    assert res["stages"]["skip"]["step"] == res["stages"]["upsamplers"][0]["step"]
    # its component re-derived from the held-out tokens and level-2 codes (windows of one prior context)
    n_top = res["held_out_top_chunks"]
    from vqladder.data import load_shards

    val = np.load(cfg.dir / "codes" / "level2.val.npy")
    toks = np.asarray(load_shards(cfg.data, progress=False).val[:n_top * 32], dtype=np.int64)
    per_window = cfg.prior.context // 2 * 4 // 4
    nats = _chunk_nats(skip, toks, val[:n_top * 4].astype(np.int64), per_window, 8)
    assert sk["components"]["skip2"] == pytest.approx(nats / np.log(2) / (n_top * 32), rel=1e-5)
    assert 0 <= sk["acc_greedy"] <= 1 and sk["bits_other"] > 0
    md = (cfg.dir / "results.md").read_text()
    assert "Skip-level likelihood" in md and "skip-level (from level 2)" in md
    assert res["matched"]["skip_level_train_flops"] > 0


def test_a_flat_rival_of_another_size_trains_for_the_hierarchys_flops(trained_text_ladder):
    from vqladder.models import load_model
    from vqladder.train.flops import step_flops

    cfg, res = trained_text_ladder
    (rival,) = res["bits"]["flat_rivals"]
    st = res["stages"]["flat_rivals"][0]
    lm = load_model(cfg.dir / "flat-rival1", "causal_lm")[0]
    assert (rival["n_layers"], rival["d_model"]) == (lm.config.n_layers, lm.config.d_model) == (2, 32)
    # steps set by the hierarchy's counted FLOPs (its size is not matched: 2 layers where the flat LM has its own)
    per_step = step_flops(lm, cfg.flat_train.batch_size, lm.config.context)
    assert st["step"] == max(1, round(res["matched"]["hierarchical_train_flops"] / per_step))
    assert rival["bits"] > 0 and rival["params"] == sum(p.numel() for p in lm.parameters())
    md = (cfg.dir / "results.md").read_text()
    assert "| flat rival 1 (2 layers, d=32;" in md and "The best flat LM of this table" in md


def test_upsampler_steps_give_the_listed_upsamplers_their_own_step_budget(trained_text_ladder):
    """``upsampler_steps: [7]``: upsampler 1 trains 7 steps (and the skip decoder, which follows it), the others
    ``upsampler_train``'s; a list longer than the ladder is refused in one line."""
    from vqladder.text.ladder_config import LadderConfig

    cfg, res = trained_text_ladder
    ups = res["stages"]["upsamplers"]
    assert ups[0]["step"] == 7 and res["stages"]["skip"]["step"] == 7
    assert all(u["step"] == cfg.upsampler_train.steps != 7 for u in ups[1:])
    with pytest.raises(VQLadderError, match="upsampler_steps lists 3 step budgets for a ladder of 2 upsamplers"):
        LadderConfig(upsampler_steps=[1, 2, 3]).validate()   # the default ladder has two levels


@pytest.mark.parametrize("k", [1, 4])
def test_skip_level_names_a_level_above_the_first(k):
    from vqladder.text.ladder_config import LadderConfig

    c = LadderConfig(mode="codes", skip_level=k)  # two levels: 2 is the only level a skip decoder can read
    with pytest.raises(VQLadderError, match="skip_level"):
        c.validate()


def test_text_ladder_resumes_per_stage_and_refuses_another_mode(trained_text_ladder):
    import shutil

    from vqladder.text.ladder_recipe import train_ladder

    cfg, res = trained_text_ladder
    shutil.rmtree(cfg.dir / "up2")
    logs = []
    res2 = train_ladder(cfg, log=logs.append)
    assert sum("done, skipped" in m for m in logs) == 10  # 3 levels, up1, up3, prior, flat, its rival, skip2, judge
    assert any(m.startswith("upsampler 2") and "training" in m for m in logs)
    assert res2["levels"] == res["levels"]
    import copy
    other = copy.deepcopy(cfg)
    other.mode = "codes"
    other.levels, other.skip_level = other.levels[:1], 0
    with pytest.raises(VQLadderError, match=r"\bmode differ.*--retrain"):
        train_ladder(other, log=lambda m: None)


def test_multi_exit_ladder_trains_and_reloads(tmp_path, tiny_corpus):

    from helpers import tiny_ladder_config

    from vqladder.config import build, to_dict
    from vqladder.data import prepare
    from vqladder.text.ladder_recipe import LadderConfig, train_ladder

    prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512, progress=False)
    d = to_dict(tiny_ladder_config(tmp_path / "data", tmp_path / "runs", steps=10, mode="text"))
    d["mode"] = "multi_exit"
    d["multi_exit"] = {"base": {"in_len": 32, "out_len": 8, "d_model": 32, "n_heads": 2, "downsample": "segment",
                                "enc_layers": 0, "dec_layers": 0, "latent_layers": 1, "quantizer": {"codebook_size": 256}},
                       "exits": [4, 2], "exit_layers": 1, "quantizer": {"codebook_size": 256}}
    d["multi_exit_train"] = d["levels"][0]["train"]
    d["eval"]["samples"] = 0
    cfg = build(LadderConfig, d)
    res = train_ladder(cfg, log=lambda m: None)
    assert [r["level"] for r in res["levels"]] == [1, 2, 3] and res["mode"] == "multi_exit"
    assert "(mode: multi_exit)" in (cfg.dir / "results.md").read_text()  # its table says which ladder it is
    assert [r["codes_per_chunk"] for r in res["levels"]] == [8, 4, 2]
    lad = Ladder.load(cfg.dir, need_prior=True, need_upsamplers=True)
    assert lad.mode == "multi_exit" and lad.levels[0].model is lad.levels[2].model  # one model, three exits
    from vqladder.data import TokenShards
    tokens = np.asarray(TokenShards(cfg.data.path).val)[:2 * lad.chunk_len(0)].astype(np.int64)
    assert np.array_equal(lad.encode(tokens, 3), np.load(cfg.dir / "codes" / "level3.val.npy")[:4].astype(np.int64))


@pytest.mark.slow
def test_tiny_text_ladder_listens_greedy_decoding_from_true_codes_beats_the_floor(tmp_path_factory):
    """A tiny text ladder trained 150 steps per stage: upsampler 1 uses its codes (another chunk's codes cost it
    clearly more), its greedy decoding from the true level-1 codes beats the most-frequent-token floor by 2x and
    the level's parallel decoder, and the end-to-end greedy decode from level 1 beats the floor too."""
    _, res, _ = _train_tiny_ladder(tmp_path_factory, "listen", "text", steps=150)
    up1 = res["listen"][0]
    assert up1["uses_codes"] and up1["bits_other"] > up1["bits_true"] + 1.0
    assert up1["acc_greedy"] > max(2 * res["floor_acc"], up1["acc_parallel"])
    assert res["levels"][0]["e2e_acc_upsample"] > 2 * res["floor_acc"]
    assert up1["actual_bits_per_token"] < up1["nominal_bits_per_token"]


def test_a_selecting_stage_holds_back_the_same_last_chunks_of_every_stream_and_others_keep_them():
    """``select``: a stage in the list trains on all but the last ``select_holdout`` of its chunks and is scored on
    them; the cut falls on the same chunk in each aligned stream (tokens and the codes above them); a stage not in
    the list trains on everything; a name that is no stage is refused in one line."""
    from vqladder.config import build
    from vqladder.text.ladder_config import LadderConfig
    from vqladder.text.ladder_stages import held_back

    cfg = build(LadderConfig, {"select": ["up1", "prior"], "select_holdout": 0.1})
    tokens, codes = np.arange(100 * 8), np.arange(100 * 2) + 10_000  # 100 chunks: 8 tokens under 2 codes each
    (tok_fit, code_fit), (tok_hold, code_hold) = held_back(cfg, "up1", [tokens, codes], [8, 2])
    assert len(tok_fit) == 90 * 8 and len(code_fit) == 90 * 2 and len(tok_hold) == 10 * 8 and len(code_hold) == 10 * 2
    assert tok_hold[0] == 90 * 8 and code_hold[0] == 10_000 + 90 * 2  # the same chunk, 90, starts both parts
    assert not set(tok_fit) & set(tok_hold)
    streams, hold = held_back(cfg, "up2", [tokens, codes], [8, 2])
    assert hold is None and streams[0] is tokens and streams[1] is codes
    with pytest.raises(VQLadderError, match="select names 'up9'"):
        build(LadderConfig, {"select": ["up9"]})


def test_ladder_seeds_script_reports_the_one_level_code_from_a_ladders_results(trained_text_ladder, tmp_path, capsys):
    """``scripts/ladder_seeds.py`` on real ladder results: with a level-1 context model, the one-level two-part
    code is its bits plus upsampler 1's, against the matched flat LM and the best flat rival, seed by seed."""
    import json
    import sys
    from pathlib import Path

    cfg, res = trained_text_ladder
    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    import ladder_seeds

    dirs = []
    for i, own in enumerate((1.5, 2.5)):
        r = json.loads((cfg.dir / "results.json").read_text())
        r["listen"][0]["own_rate_bits_per_token"] = own
        (tmp_path / f"s{i}").mkdir()
        (tmp_path / f"s{i}" / "results.json").write_text(json.dumps(r))
        dirs.append(str(tmp_path / f"s{i}"))
    assert ladder_seeds.main(dirs) == 0
    out = capsys.readouterr().out
    one = [own + res["bits"]["components"]["upsampler1"] for own in (1.5, 2.5)]
    assert f"One-level two-part code (level-1 codes under the compressor's own context model + upsampler 1): " \
           f"{ladder_seeds._ms(one)} bits/token" in out
    rival = res["bits"]["flat_rivals"][0]["bits"]
    assert f"{ladder_seeds._ms([o / rival for o in one])}x the best flat rival" in out
    assert ladder_seeds.against(dirs, dirs) == 0
    assert f"| one-level two-part / the other's best flat rival (same seed) | {ladder_seeds._ms([o / rival for o in one])}" \
        in capsys.readouterr().out


def test_ladder_compare_script_puts_each_ladders_code_value_side_by_side(trained_text_ladder, tmp_path, capsys):
    """``scripts/ladder_compare.py`` prints every upsampler's code value from the runs' results, flags the one
    whose true codes are not cheaper than another chunk's, skips runs made before the diagnostic existed, and sets
    the best flat rival beside the matched flat LM."""
    import json
    import sys
    from pathlib import Path

    cfg, res = trained_text_ladder
    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    import ladder_compare

    r = json.loads((cfg.dir / "results.json").read_text())
    r["listen"][0]["uses_codes"] = True
    deaf = json.loads(json.dumps(r))
    deaf["listen"][0]["uses_codes"] = False
    old = {k: v for k, v in r.items() if k != "listen"}
    for name, x in (("heard", r), ("deaf", deaf), ("old", old)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(x))
    assert ladder_compare.main([str(tmp_path / n) for n in ("heard", "deaf", "old")]) == 0
    out = capsys.readouterr().out
    x = res["listen"][0]
    assert f"| heard | 1 | {x['bits_true']:.3f} | {x['bits_other']:.3f} |" in out
    b = res["bits"]
    best = min(rv["bits"] for rv in b["flat_rivals"])
    assert f"| {best:.2f} ({b['hierarchical'] / best:.2f}x; " in out  # the best flat rival beside the matched one
    assert f"| deaf | 1 (ignores its codes) | {x['bits_true']:.3f} |" in out
    assert "| old | 1 |" not in out and "| old | 1 (" not in out
    assert ladder_compare.main([str(tmp_path / "missing")]) == 2
