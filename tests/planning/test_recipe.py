"""``vqladder.planning.recipe``: the planning experiment end to end, resumed, refused when the maze changes."""

import numpy as np
import pytest

from vqladder.errors import VQLadderError
from vqladder.planning.maze import (
    DELTA,
)

U, D, L, R = 0, 1, 2, 3


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    from vqladder.config import build
    from vqladder.planning.recipe import PlanConfig, run_plan_experiment

    tmp = tmp_path_factory.mktemp("plan")
    small = {"steps": 20, "batch_size": 16, "warmup": 5, "eval_every": -1, "ckpt_every": 10, "log_every": 10,
             "progress": False, "precision": "fp32"}
    cfg = build(PlanConfig, {
        "name": "p", "out_dir": str(tmp), "maze": {"rooms": 2, "room": 2, "max_moves": 8},
        "data": {"train_layouts": 15, "episodes_per_layout": 10, "test_layouts": 4, "val_layouts": 2}, "seeds": [0],
        "flat": {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "train": small},
        "ladder": {"chunk": 4, "compressor": {"d_model": 32, "n_heads": 2, "enc_layers": 1, "latent_layers": 1,
                                              "dec_layers": 1, "quantizer": {"codebook_size": 1024}},
                   "compressor_train": small, "prior": {"d_model": 32, "n_heads": 2, "n_layers": 1},
                   "prior_train": small},
        "value": {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "train": small},
        "subgoal": {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "train": small},
        "endstate": {"model": {"d_model": 32, "n_heads": 2, "levels": [3, 3], "rate_weight": 0.1}, "train": small},
        "contenders": ["flat", "ladder", "subgoal", "rooms", "doors", "endstate"],
        "search": {"budgets": [1, 2], "scorers": ["likelihood", "verifier", "value", "value+verifier"]},
        "match_flops": True,
        "segments": {"methods": ["learned", "entropy"], "model": {"d_model": 32, "n_heads": 2}, "train": small,
                     "entropy_lm_train": small},
    })
    logs = []
    return cfg, run_plan_experiment(cfg, log=logs.append), logs


def test_both_contenders_train_and_respect_budgets(tiny_plan):
    cfg, res, logs = tiny_plan
    assert res["layout_overlap"] == 0
    # every contender's options were searched on the validation tasks too, and a choice was made from them
    assert res["val_tasks"] > 0 and all(r["split"] == "val" for r in res["val_rows"])
    assert set(res["chosen"]) == set(cfg.contenders) and "Chosen on validation" in (cfg.dir / "results.md").read_text()
    rows = res["rows"]
    assert {r["contender"] for r in rows} == {"flat", "ladder", "subgoal", "rooms", "doors", "endstate"}
    assert len(rows) == 6 * 2 * 4 * 2
    # a charged scorer (the learned value) cannot afford a 1x budget for the flat beam: said, not run
    assert any(r.get("unaffordable") and r["scorer"].startswith("value") and r["budget_x"] == 1 for r in rows)
    expanders = ("subgoal", "rooms", "doors", "endstate")
    assert not any(r.get("unaffordable") for r in rows
                   if not r["scorer"].startswith("value") and r["contender"] not in expanders)
    # the subgoal, rooms and doors planners pay `chunk` per expanded code: a 1x budget cannot expand a whole plan
    assert all(r.get("unaffordable") for r in rows if r["contender"] in expanders and r["budget_x"] == 1)
    for r in rows:
        if r.get("unaffordable"):
            continue
        assert r["max_evals"] <= r["budget"]
        assert 0 <= r["success"] <= r["validity"] <= 1
        assert len(r["per_task"]) == res["tasks"]
    assert (cfg.dir / "success_vs_budget.png").is_file() and (cfg.dir / "success_vs_length.png").is_file()
    md = (cfg.dir / "results.md").read_text()
    assert "| ladder | beam | verifier | 2x |" in md and "| flat | beam | value | 2x |" in md
    assert "unaffordable" in md and "Training compute (FLOPs, counted" in md
    meta = res["meta"][0] if 0 in res["meta"] else res["meta"]["0"]
    assert set(meta["train_flops"]) == {"flat", "ladder_compressor", "ladder_prior", "subgoal_decoder", "value",
                                        "rooms_compressor", "rooms_prior", "rooms_decoder", "doors_prior",
                                        "doors_decoder", "endstate_coder", "endstate_prior", "endstate_decoder"}
    assert all(v > 0 for v in meta["train_flops"].values())
    f = meta["train_flops"]  # match_flops: the flat planner's steps bought with the largest contender's counted FLOPs
    ladder = f["ladder_compressor"] + f["ladder_prior"]
    largest = max(ladder + f["subgoal_decoder"], *(sum(v for k, v in f.items() if k.startswith(w + "_"))
                                                   for w in ("rooms", "doors", "endstate")))
    assert f["flat"] == pytest.approx(largest, rel=0.1) and largest > ladder
    dg = meta["diagnostics"]
    assert 0 <= dg["ladder_code_exact"] <= 1 and 0 <= dg["subgoal_code_exact"] <= 1
    assert dg["value_mae"] >= 0 and -1 <= dg["value_spearman"] <= 1 and "moves-to-go error" in md
    assert 0 <= dg["endstate_end_exact"] <= 1 and "give back the cell the walk ends in" in md
    for k in ("rooms", "doors", "endstate"):
        assert 0 <= dg[f"{k}_door_mi"] <= 1 + 1e-9 and dg[f"{k}_prior_bits"] >= 0
        assert dg[f"{k}_segments"] >= 1 and all(0 <= dg[f"{k}_{m}"] <= 1 for m in ("seg_exact", "plan_exact", "plan_success", "prior_acc"))
        assert dg[f"{k}_plan_success"] >= dg[f"{k}_plan_exact"]
    assert "Rooms contender on the same plans" in md and "rooms: compressor + prior + decoder" in md
    assert "Doors contender on the same plans" in md and "doors: prior + decoder" in md
    assert "Endstate contender on the same plans" in md and "endstate: coder + prior + decoder" in md
    assert dg["doors_door_mi"] == pytest.approx(1.0)  # the rule's codes carry all of themselves
    assert (cfg.dir / "seed0" / "endstate_decoder_b3").is_dir() and meta["params"]["endstate_coder"] > 0
    # the doors decoder learns from the optimal demonstrations only (the default), in a directory named so
    assert meta["params"]["doors_decoder_demos"] == int((np.load(cfg.dir / "data.npz")["train_buckets"] == 3).sum()) > 0
    assert (cfg.dir / "seed0" / "doors_decoder_b3").is_dir() and not (cfg.dir / "seed0" / "doors_decoder").exists()
    b = meta["boundaries"]
    assert b["crossings"] > 0 and all(0 <= b[k] <= 1 for k in ("fixed", "entropy", "chance"))
    seg = meta["segments"]  # variable-length codes of moves, both boundary methods, measured on the same plans
    assert set(seg) == {"learned", "entropy"} and "Variable-length codes of moves" in md
    assert all(v["crossings"] == b["crossings"] and 0 <= v["hit"] <= 1 and v["segments_per_plan"] >= 1 for v in seg.values())


def test_plan_cli_shows_an_episode(tiny_plan, capsys):
    from vqladder.cli import main

    cfg, _, _ = tiny_plan
    assert main(["plan", str(cfg.dir), "--task", "0", "--contender", "ladder", "--scorer", "verifier"]) == 0
    out = capsys.readouterr().out
    assert "plan codes" in out and "valid=" in out and "#" in out and "code boundary" in out
    assert main(["plan", str(cfg.dir), "--task", "1", "--scorer", "value+verifier", "--budget", "4"]) == 0
    assert "evaluations=" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--task", "0", "--contender", "subgoal", "--scorer", "verifier", "--budget", "8"]) == 0
    assert "code boundary" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--task", "0", "--contender", "rooms", "--scorer", "verifier", "--budget", "8"]) == 0
    assert "valid=" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--task", "1", "--contender", "doors", "--method", "sample", "--budget", "16"]) == 0
    assert "valid=" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--task", "0", "--contender", "endstate", "--scorer", "verifier", "--budget", "8"]) == 0
    assert "valid=" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--goal", "7,7"]) == 2
    assert "outside" in capsys.readouterr().err
    assert main(["plan", str(cfg.dir), "--budget", "0"]) == 2
    assert main(["plan", str(cfg.dir), "--doors=-1,-1,-1,-1", "--start", "0,0", "--goal", "3,3"]) == 2
    assert "no path" in capsys.readouterr().err


def test_example_episodes_follow_their_moves(tiny_plan):
    """episodes.json (for the report): both contenders on the same held-out tasks, the walked cells are the
    moves' cells from the start, and the ladder's codes begin every `chunk` moves."""
    import json

    from vqladder.planning.maze import MOVES

    cfg, _, _ = tiny_plan
    eps = json.loads((cfg.dir / "episodes.json").read_text())
    assert len(eps) == 6 * min(cfg.search.examples, 4)
    assert {e["contender"] for e in eps} == {"flat", "ladder", "subgoal", "rooms", "doors", "endstate"}
    for e in eps:
        assert e["cells"][0] == e["start"] and e["evaluations"] <= e["budget"]
        for (r, c), (r2, c2), m in zip(e["cells"], e["cells"][1:], e["moves"]):
            assert (r + DELTA[MOVES.index(m)][0], c + DELTA[MOVES.index(m)][1]) == (r2, c2)
        assert e["reached"] == (e["valid"] and e["cells"][-1] == e["goal"]) or not e["valid"]
        if e["contender"] in ("rooms", "doors", "endstate"):  # a code per expanded segment: starts increase from 0, at most `chunk` apart
            st = e["code_starts"]
            assert st[0] == 0 and all(0 < b - a <= cfg.ladder.chunk for a, b in zip(st, st[1:]))
            continue
        step = 1 if e["contender"] == "flat" else cfg.ladder.chunk
        assert e["code_starts"] == list(range(0, cfg.maze.max_moves, step))


def test_added_budgets_and_contenders_evaluate_only_what_is_missing(tiny_plan):
    """Re-running an experiment with a larger budget list trains nothing and evaluates only the new budget."""
    from dataclasses import replace

    from vqladder.planning.recipe import run_plan_experiment

    cfg, res, _ = tiny_plan
    logs = []
    more = replace(cfg, search=replace(cfg.search, budgets=[1, 2, 4]))
    res2 = run_plan_experiment(more, log=logs.append)
    assert not any("training" in line for line in logs)
    evaluated = [line for line in logs if "budget" in line and "x:" in line]
    assert evaluated and all(" 4x:" in line for line in evaluated)
    assert len(res2["rows"]) == len(res["rows"]) * 3 // 2
    def key(r):
        return r["contender"], r["method"], r["scorer"], r["budget_x"], r.get("success"), r.get("per_task")
    assert [key(r) for r in res2["rows"] if r["budget_x"] < 4] == [key(r) for r in res["rows"]]
    run_plan_experiment(cfg, log=logs.append)  # back to the fixture's budgets, for the tests after this one


def test_changed_search_settings_evaluate_again(tiny_plan, tmp_path):
    """A row records the search settings it was made with: another value weight evaluates the value scorers again
    (and nothing else; no stage retrains), and the rows say which weight they used."""
    import shutil
    from dataclasses import replace

    from vqladder.planning.recipe import run_plan_experiment

    cfg, res, _ = tiny_plan
    shutil.copytree(cfg.dir, tmp_path / cfg.name)
    other = replace(cfg, out_dir=str(tmp_path), search=replace(cfg.search, value_weight=0.25))
    logs = []
    res2 = run_plan_experiment(other, log=logs.append)
    assert not any("training" in line for line in logs)
    evaluated = [line for line in logs if "budget" in line and "x:" in line]
    assert evaluated and all(" value" in line for line in evaluated)
    assert len(res2["rows"]) == len(res["rows"])
    assert {r["search"]["value_weight"] for r in res2["rows"] if r["scorer"].startswith("value")} == {0.25}
    assert all("value_weight" not in r["search"] for r in res2["rows"] if not r["scorer"].startswith("value"))


def test_closed_loop_priors_and_a_roll_out_value_train_as_their_own_stages(tiny_plan, tmp_path):
    """``closed_loop``: the doors and endstate priors are fine-tuned from their open-loop priors into their own
    stages (the open ones kept, both counted in the contender's FLOPs) and plan closed-loop within budget;
    ``value.rollouts``: the value learns from the demonstrations and sampled plans, in its own stage."""
    import shutil
    from dataclasses import replace

    from vqladder.planning.recipe import run_plan_experiment
    from vqladder.planning.stages import contender_flops, load_planner
    from vqladder.train.stage import stage_results

    cfg, _, _ = tiny_plan
    shutil.copytree(cfg.dir, tmp_path / cfg.name)
    # the flat planner kept at the steps it trained for (matching FLOPs would buy it the fine-tuning's too)
    flat = replace(cfg.flat, train=replace(cfg.flat.train, steps=stage_results(cfg.dir / "seed0" / "flat")["step"]))
    cl = replace(cfg, out_dir=str(tmp_path), closed_loop=True, closed_loop_train=cfg.ladder.prior_train,
                 value=replace(cfg.value, rollouts=1), match_flops=False, flat=flat,
                 search=replace(cfg.search, methods=["beam"], scorers=["likelihood", "value+verifier"]))
    logs = []
    res = run_plan_experiment(cl, log=logs.append)
    sd = cl.dir / "seed0"
    trained = [line for line in logs if "training" in line]
    assert any("doors top prior, closed loop" in line for line in trained)
    assert any("endstate top prior, closed loop" in line for line in trained)
    assert any("value (moves to go, with search roll-outs)" in line for line in trained)
    assert not any("coder" in line or "decoder" in line for line in trained)  # codes and decoders reused
    for k in ("doors", "endstate"):
        assert (sd / f"{k}_prior").is_dir() and (sd / f"{k}_prior_closed").is_dir()
        assert res["meta"][0]["train_flops"][f"{k}_prior"] == pytest.approx(
            stage_results(sd / f"{k}_prior")["train_flops"] + stage_results(sd / f"{k}_prior_closed")["train_flops"])
        assert load_planner(cl, sd, k).closed_loop and contender_flops(cl, sd, k) > contender_flops(cfg, sd, k)
    assert (sd / "value_rollouts1").is_dir() and res["meta"][0]["params"]["value_rollouts"] == 150
    rows = [r for r in res["rows"] if not r.get("unaffordable")]
    assert {r["contender"] for r in rows} >= {"doors", "endstate"} and all(r["max_evals"] <= r["budget"] for r in rows)
    md = (cl.dir / "results.md").read_text()
    assert "closed loop: it reads the cell each segment begins in" in md and "search roll-outs sampled" in md
    (sd / "value_rollouts1_rows.json").unlink()  # as if killed between the roll-outs' two files: made again
    again = run_plan_experiment(cl, log=logs.append)
    assert again["meta"][0]["params"]["value_rollouts"] == 150 and (sd / "value_rollouts1_rows.json").is_file()


def test_a_changed_maze_is_refused_not_reused(tmp_path):
    """The demonstrations and tasks (data.npz) of an experiment directory are never reused under another maze or
    data config: the rerun is refused in one line before anything is written."""
    from vqladder.config import build
    from vqladder.planning.recipe import PlanConfig, open_plan_dir

    cfg = build(PlanConfig, {"out_dir": str(tmp_path), "name": "p"})
    open_plan_dir(build(PlanConfig, {"out_dir": str(tmp_path), "name": "p", "maze": {"rooms": 4}}))  # no data yet
    open_plan_dir(cfg)                                                                              # may change
    (cfg.dir / "data.npz").write_bytes(b"")
    open_plan_dir(cfg)  # the same config passes
    open_plan_dir(build(PlanConfig, {"out_dir": str(tmp_path), "name": "p", "search": {"budgets": [2]}}))  # eval-only
    with pytest.raises(VQLadderError, match="maze.rooms"):
        open_plan_dir(build(PlanConfig, {"out_dir": str(tmp_path), "name": "p", "maze": {"rooms": 4}}))
    assert (cfg.dir / "config.yaml").is_file() and not (cfg.dir / "plan.yaml").exists()



def test_seeds_run_apart_combine_into_one_experiment(tmp_path):
    """Seeds run as separate experiments (one per core) combine into one: nothing trains or searches again, the
    tables are over both seeds, the sources stay as they were; a target that exists, another config, a seed in
    two sources or other tasks are refused before anything is written."""
    import shutil

    from vqladder.config import build
    from vqladder.planning.recipe import PlanConfig, combine_seeds, run_plan_experiment

    small = {"steps": 10, "batch_size": 16, "warmup": 2, "eval_every": -1, "ckpt_every": 10, "log_every": 10,
             "progress": False, "precision": "fp32"}
    base = {"out_dir": str(tmp_path), "maze": {"rooms": 2, "room": 2, "max_moves": 8},
            "data": {"train_layouts": 10, "episodes_per_layout": 4, "test_layouts": 3, "val_layouts": 2},
            "flat": {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "train": small},
            "ladder": {"prior": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "prior_train": small},
            "subgoal": {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "train": small},
            "contenders": ["flat", "doors"],
            "search": {"budgets": [2], "methods": ["beam"], "scorers": ["likelihood", "verifier"]}}
    for s in (0, 1):
        run_plan_experiment(build(PlanConfig, {**base, "name": f"x-s{s}", "seeds": [s]}), log=lambda m: None)
    src = [tmp_path / "x-s0", tmp_path / "x-s1"]
    before = {p: p.stat().st_mtime_ns for d in src for p in d.rglob("*")}
    logs = []
    res = combine_seeds(tmp_path / "x", src, log=logs.append)
    assert not any("training" in m or "x:" in m for m in logs)  # every stage and search row re-read
    assert sorted(res["meta"]) == [0, 1] and {r["seed"] for r in res["rows"]} == {0, 1}
    assert {r["seed"] for r in res["val_rows"]} == {0, 1}
    md = (tmp_path / "x" / "results.md").read_text()
    assert "seeds [0, 1]" in md
    # each seed's time as its stages' and searches' records give it (copied, not re-measured)
    assert set(res["meta"][1]["train_seconds"]) == {"flat", "doors_prior", "doors_decoder_b3"}
    assert all(v > 0 for v in res["meta"][1]["train_seconds"].values()) and "Wall-clock from the records" in md
    assert before == {p: p.stat().st_mtime_ns for d in src for p in d.rglob("*")}  # sources untouched

    # search.validation=false: the validation tasks are not searched (and no choice is reported)
    logs = []
    res1 = combine_seeds(tmp_path / "one", src[:1], log=logs.append, overrides=["search.validation=false",
                                                                              "search.scorers=[verifier]"])
    assert "val_rows" not in res1 and "chosen" not in res1 and {r["scorer"] for r in res1["rows"]} == {"verifier"}
    assert "Validation layouts not searched (`search.validation: false`" in (tmp_path / "one" / "results.md").read_text()
    assert not any("x:" in m for m in logs)
    with pytest.raises(VQLadderError, match="not from overrides"):
        combine_seeds(tmp_path / "two", src[:1], overrides=["seeds=[5]"])

    with pytest.raises(VQLadderError, match="exists"):
        combine_seeds(tmp_path / "x", src)
    # a combine killed while copying leaves only its staging directory: the rerun makes it again, whole
    from vqladder.io import own_dir
    (own_dir(tmp_path / ".z.combining", "experiment") / "seed0").mkdir()
    assert sorted(combine_seeds(tmp_path / "z", src, log=logs.append)["meta"]) == [0, 1]
    assert not (tmp_path / ".z.combining").exists()
    (tmp_path / ".w.combining").mkdir()  # a folder vqladder did not make is refused, untouched
    (tmp_path / ".w.combining" / "notes.txt").write_text("mine")
    with pytest.raises(VQLadderError, match="not made by vqladder"):
        combine_seeds(tmp_path / "w", src)
    assert (tmp_path / ".w.combining" / "notes.txt").read_text() == "mine" and not (tmp_path / "w").exists()
    with pytest.raises(VQLadderError, match="seed 0 is in two sources"):
        combine_seeds(tmp_path / "y", [src[0], src[0]])
    other = tmp_path / "x-other"
    shutil.copytree(src[1], other)
    (other / "config.yaml").write_text((other / "config.yaml").read_text().replace("test_layouts: 3",
                                                                                   "test_layouts: 2"))
    with pytest.raises(VQLadderError, match="another config"):
        combine_seeds(tmp_path / "y", [src[0], other])
    shutil.copyfile(src[1] / "config.yaml", other / "config.yaml")
    (other / "data.npz").write_bytes((other / "data.npz").read_bytes() + b"\0")
    with pytest.raises(VQLadderError, match="not the same tasks"):
        combine_seeds(tmp_path / "y", [src[0], other])
    assert not (tmp_path / "y").exists()
