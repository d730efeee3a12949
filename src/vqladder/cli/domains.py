"""Handlers of the planning, video and embedding commands."""

from __future__ import annotations

from pathlib import Path

from ..errors import VQLadderError
from .common import _cell, _load, _read_codes, _run_tokenizer, _split_config_args, _text_input, run_recipe  # noqa: F401


def cmd_plan_experiment(a) -> int:
    from ..planning.recipe import PlanConfig, run_plan_experiment

    return run_recipe(a, PlanConfig, run_plan_experiment, "plan-experiment",
                      "results.json, results.md, success_vs_budget.png, success_vs_length.png")


def cmd_plan(a) -> int:
    import numpy as np
    import torch

    from ..config import load_config
    from ..io import read_yaml_doc
    from ..planning.evaluate import make_scorer
    from ..planning.maze import MOVES, EpisodeCodec, make_layout, random_task, validate
    from ..planning.recipe import PlanConfig, load_planner
    from ..train.recipe import saved_config

    d = Path(a.run)
    p = saved_config(d) if d.is_dir() else None
    doc = read_yaml_doc(p) if p is not None and p.is_file() else None
    if not isinstance(doc, dict) or (doc.get("experiment") != "planning" and p.name != "plan.yaml"):
        why = ("not a directory" if d.exists() and not d.is_dir() else "no such directory" if not d.is_dir() else "no saved config" if not isinstance(doc, dict)
               else f"its saved config is a {doc.get('experiment') or 'compressor'} one")
        raise VQLadderError(f"{d} is not a plan-experiment directory ({why})")
    cfg = load_config(PlanConfig, p)
    codec = EpisodeCodec(cfg.maze)
    if a.budget <= 0:
        raise VQLadderError(f"--budget must be > 0 model evaluations, got {a.budget}")
    sd = d / f"seed{a.seed}"
    if not sd.is_dir():
        trained = sorted(int(p.name[4:]) for p in d.glob("seed*") if p.is_dir() and p.name[4:].isdigit())
        raise VQLadderError(f"seed {a.seed} was not trained in {d} (trained seeds: "
                            f"{', '.join(map(str, trained)) or 'none'}); pick one with --seed")
    T = cfg.maze.max_moves
    planner = load_planner(cfg, sd, a.contender)
    if a.layout_seed is None:
        try:
            data = dict(np.load(d / "data.npz"))
        except (OSError, ValueError, EOFError) as e:
            raise VQLadderError(f"{d / 'data.npz'} is missing or corrupted ({type(e).__name__}); rerun "
                                f"`vqladder plan-experiment` on {d} to write it again")
        if not 0 <= a.task < len(data["test_cond"]):
            raise VQLadderError(f"--task must be in 0..{len(data['test_cond']) - 1}")
        lay, start, goal, _ = codec.decode_cond(data["test_cond"][a.task])
    else:
        rng = np.random.default_rng(a.layout_seed)
        lay = make_layout(cfg.maze, rng)
        start, goal = random_task(lay, rng)
    if a.doors:
        try:
            doors = [int(v) for v in a.doors.split(",")]
        except ValueError:
            raise VQLadderError("--doors must be comma-separated door offsets (-1 = no door)")
        if len(doors) != cfg.maze.n_walls or any(not -1 <= v < cfg.maze.room for v in doors):
            raise VQLadderError(f"--doors needs {cfg.maze.n_walls} values in -1..{cfg.maze.room - 1}")
        lay.doors = np.array(doors, dtype=np.int64)
    if a.start:
        start = _cell(a.start, "start")
    if a.goal:
        goal = _cell(a.goal, "goal")
    lay.check_cell(start, "start")
    lay.check_cell(goal, "goal")
    shortest = validate(lay, start, goal, []).shortest
    if shortest < 0:
        raise VQLadderError(f"no path from {start} to {goal} in this layout (closed doors)")
    cond = codec.cond(lay, start, goal, 3)
    value = None
    if a.scorer.startswith("value"):
        if not (sd / "value").is_dir():
            raise VQLadderError(f"{sd} has no learned value (train one: search.scorers with value in the config)")
        from ..models import load_model

        value = load_model(sd / "value", "plan_value")[0]
    scorer = make_scorer(a.scorer, cfg, {"value": value}, cond, lay, start, goal)
    budget = a.budget * T
    moves, used = planner.plan(cond, a.method, scorer, budget, seed=a.seed)
    if a.contender == "ladder":
        codes = planner.comp.encode(torch.as_tensor(moves).long()[None])[0].tolist()
        print(f"plan codes (level 1, {cfg.ladder.chunk} moves each): {' '.join(map(str, codes))}")
    ladderish = a.contender != "flat"
    o = validate(lay, start, goal, moves.tolist())
    shown = [MOVES[m] if m < 4 else "." for m in moves.tolist()[:max(o.length, 1)]]
    if ladderish:  # mark where each code's moves begin
        starts = set(getattr(planner, "code_starts", None) or range(0, T, cfg.ladder.chunk))
        shown = [("|" if i and i in starts else "") + m for i, m in enumerate(shown)]
    print(f"moves: {''.join(shown)}" + ("   (| = a code boundary)" if ladderish else ""))
    print(lay.render(start, goal, moves.tolist()))
    print(f"valid={o.valid} reached={o.reached} length={o.length} shortest={o.shortest} "
          f"evaluations={used}/{budget}")
    return 0


def cmd_video(a) -> int:
    from ..video import recipe as V

    cfg = _load(V.VideoExpConfig, a, 'video')
    cfg.validate()
    if a.action in ("generate", "show"):  # the PNG path is checked before any work
        from ..io import check_output_file
        from ..report import made_png

        default = cfg.dir / ("preview.png" if a.action == "generate" else f"show-seed{a.seed}-clip{a.clip}.png")
        out = check_output_file(Path(a.out) if a.out else default, a.overwrite, made_png, "PNG file")
    if a.action == "generate":
        V.preview(cfg, out)
        from ..video.data import load_videos

        tr, te = load_videos(cfg.data)
        print(f"{cfg.data.kind}: train frames {list(tr['frames'].shape)}, held-out {list(te['frames'].shape)}; "
              f"state: {', '.join(k for k in tr if k != 'frames')}; cached in {cfg.data.cache_dir}; preview {out}")
    elif a.action == "train":
        V.train_video(cfg)
        print(f"trained: {cfg.dir} (seeds {cfg.seeds}); next: vqladder video eval with the same config")
    elif a.action == "eval":
        V.eval_video(cfg, train_missing=a.train)
        print((cfg.dir / "results.md").read_text())
        print(f"written: {cfg.dir}/results.{{json,md}}, {cfg.dir}/strip.png")
    else:
        out = V.show(cfg, a.seed, a.clip, out)
        print(f"written: {out}")
    return 0


def cmd_embed(a) -> int:
    from ..embed.models import CodeIndex
    from ..embed.recipe import EmbedConfig, build_index, run_embed_eval

    if a.action in ("eval", "build"):
        cfg = _load(EmbedConfig, a, 'embed')
        if a.action == "eval":
            run_embed_eval(cfg)
            print((cfg.dir / "results.md").read_text())
            print(f"written: {cfg.dir / 'results.json'}, {cfg.dir / 'results.md'}, {cfg.dir / 'recall_vs_bytes.png'}")
        else:
            build_index(cfg, a.out, a.bytes)
        return 0
    index = CodeIndex(a.index)
    if a.action == "encode":
        lines = [t for t in _text_input(a).splitlines() if t.strip()]
        for t, c in zip(lines, index.encode(lines)):
            print(" ".join(map(str, c.tolist())) + "\t" + t[:80])
        return 0
    if a.k < 1:
        raise VQLadderError(f"-k must be >= 1, got {a.k}")
    for score, text, codes in index.search(a.query, a.k):
        print(f"{score:.3f}  [{' '.join(map(str, codes[:4]))} …]  {text[:120]}")
    return 0
