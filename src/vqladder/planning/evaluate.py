"""Planning success and diagnostics on held-out maze tasks: every contender x search method x scorer x budget
(``evaluate``), example episodes for the report, and why a planner wins or loses (``diagnostics``: code
decode exactness, next-symbol accuracy of the priors, the value's error; ``boundary_alignment``: do code
boundaries fall on room crossings).

``cfg`` is the planning experiment's config (``maze``, ``search``, ``contenders``, ``ladder.chunk``), read
by attribute only; ``planners`` maps contender names to ``models.planners`` planners (plus ``"value"``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..errors import VQLadderError
from ..models.sampling import greedy
from ..nn import eval_mode
from .config import SEGMENT_KINDS
from .endstate import endstate_rows
from .maze import DELTA, MOVES, EpisodeCodec, validate
from .planners import ValueScorer, Verifier, door_codes, room_segments, subgoal_cond


def make_scorer(name: str, cfg, planners: dict, cond, lay, start, goal):
    """The named scorer for one task (None = likelihood only)."""
    ver = Verifier(lay, start, goal, cfg.search.dense_verifier) if "verifier" in name else None
    if not name.startswith("value"):
        return ver
    return ValueScorer(planners["value"], EpisodeCodec(cfg.maze).with_bucket(cond, 3), ver, cfg.search.value_weight)


def search_knobs(search, method: str, scorer: str) -> dict:
    """The search settings an evaluation row was made with, beside its contender, method, scorer and budget: the
    ones that search reads (the temperature when it samples, the scorer's weight when it scores, the value's
    weight when it is a value scorer, the dense verifier when it verifies)."""
    use = {"temperature": method == "sample", "verifier_weight": scorer != "likelihood",
           "value_weight": scorer.startswith("value"), "dense_verifier": "verifier" in scorer}
    return {k: getattr(search, k) for k, on in use.items() if on}


def search_tasks(cfg, planners: dict, who: str, method: str, sc: str, budget: int, tasks: np.ndarray,
                 seed: int) -> list[tuple]:
    """(moves, evaluations) of contender ``who``'s search on every task, ``search.batch_tasks`` tasks at a time (one
    model call per step for all of them, each task searched and charged as alone; best-of-N task i draws from its
    own generator, seeded by ``seed`` and i)."""
    codec, pl = EpisodeCodec(cfg.maze), planners[who]
    w, out, n = cfg.search.verifier_weight, [], cfg.search.batch_tasks
    for i in range(0, len(tasks), n):
        part = list(tasks[i:i + n])
        scorers = [make_scorer(sc, cfg, planners, c, *codec.decode_cond(c)[:3]) for c in part]
        if method == "beam":
            out += pl.beam_many(part, scorers, budget, w)
        else:
            out += pl.best_of_many(part, scorers, budget, w, cfg.search.temperature,
                                   [seed * 100_003 + k for k in range(i, i + len(part))])
    return out


def evaluate(cfg, planners: dict, test_cond: np.ndarray, seed: int, log, done=()) -> list[dict]:
    """Rows of (contender, method, scorer, budget multiple) over the tasks, skipping the keys in ``done``."""
    codec = EpisodeCodec(cfg.maze)
    T = cfg.maze.max_moves
    rows = []
    for who in cfg.contenders:
        for method in cfg.search.methods:
            for sc in cfg.search.scorers:
                for mult in cfg.search.budgets:
                    if (who, method, sc, mult) in done:
                        continue
                    budget = mult * T
                    succ, opt, valid, evals, shortest = [], [], [], [], []
                    t0 = time.time()
                    try:
                        for cond, (moves, used) in zip(test_cond, search_tasks(cfg, planners, who, method, sc,
                                                                               budget, test_cond, seed)):
                            lay, s, g, _ = codec.decode_cond(cond)
                            o = validate(lay, s, g, moves.tolist())
                            succ.append(o.valid and o.reached)
                            valid.append(o.valid)
                            shortest.append(o.shortest)
                            if o.valid and o.reached:
                                opt.append(o.optimality)
                            evals.append(used)
                    except VQLadderError as e:  # this search cannot afford this budget: say so, do not run it
                        if "budget" not in str(e):
                            raise
                        log(f"seed {seed} {who:6s} {method:6s} {sc:10s} budget {mult:>2}x: unaffordable ({e})")
                        rows.append({"seed": seed, "contender": who, "method": method, "scorer": sc, "budget_x": mult,
                                     "budget": budget, "search": search_knobs(cfg.search, method, sc), "unaffordable": True})
                        continue
                    row = {"seed": seed, "contender": who, "method": method, "scorer": sc, "budget_x": mult,
                           "budget": budget, "search": search_knobs(cfg.search, method, sc),
                           "success": float(np.mean(succ)), "validity": float(np.mean(valid)),
                           "optimality": float(np.mean(opt)) if opt else float("nan"),
                           "mean_evals": float(np.mean(evals)), "max_evals": int(np.max(evals)),
                           "seconds": round(time.time() - t0, 2),
                           "per_task": [[int(a), bool(b)] for a, b in zip(shortest, succ)]}
                    if row["max_evals"] > budget:
                        raise RuntimeError(f"search exceeded its budget: {row}")
                    log(f"seed {seed} {who:6s} {method:6s} {sc:10s} budget {mult:>2}x: success {row['success']:.2f} "
                        f"optimality {row['optimality']:.2f} validity {row['validity']:.2f}")
                    rows.append(row)
    return rows


def example_episodes(cfg, planners: dict, test_cond: np.ndarray, seed: int) -> list[dict]:
    """The first ``search.examples`` held-out tasks planned by both contenders with the first search method,
    the verifier if it is searched (else likelihood), at the largest budget: the maze, the moves, the cells
    walked and where each code's moves begin (every ``ladder.chunk`` moves; one code per move for flat)."""
    codec = EpisodeCodec(cfg.maze)
    T, ch = cfg.maze.max_moves, cfg.ladder.chunk
    method = cfg.search.methods[0]
    sc = next((s for s in ("value+verifier", "verifier") if s in cfg.search.scorers), cfg.search.scorers[0])
    budget = max(cfg.search.budgets) * T
    out = []
    for i, cond in enumerate(test_cond[:cfg.search.examples]):
        lay, start, goal, _ = codec.decode_cond(cond)
        for who in cfg.contenders:
            scorer = make_scorer(sc, cfg, planners, cond, lay, start, goal)
            moves, used = planners[who].plan(cond, method, scorer, budget, cfg.search.verifier_weight,
                                             cfg.search.temperature, seed=seed * 100_003 + i)
            moves = [int(m) for m in moves]
            o = validate(lay, start, goal, moves)
            cells, u = [list(start)], start
            for m in moves:
                if m not in DELTA or not lay.can_move(u, m):
                    break
                u = (u[0] + DELTA[m][0], u[1] + DELTA[m][1])
                cells.append(list(u))
                if u == goal:
                    break
            out.append({"task": i, "contender": who, "method": method, "scorer": sc, "budget": budget,
                        "evaluations": int(used), "maze": lay.render(start, goal).splitlines(),
                        "start": list(start), "goal": list(goal), "moves": "".join(MOVES[m] if m < 4 else "."
                                                                                  for m in moves),
                        "cells": cells, "valid": bool(o.valid), "reached": bool(o.reached),
                        "code_starts": list(getattr(planners[who], "code_starts", None)
                                            or range(0, T, 1 if who == "flat" else ch))})
    return out


@torch.no_grad()
def diagnostics(cfg, planners: dict, test_cond: np.ndarray) -> dict:
    """Why a planner wins or loses, measured on the held-out tasks' shortest plans: how often each level-1 code
    of such a plan decodes back to its moves (the ladder's compressor decoder from the codes alone; the subgoal
    decoder from the code and the cell where the chunk begins); how often the top prior predicts the plan's next
    code (teacher-forced, given the optimal bucket) against how often the flat model predicts every move of the
    same chunk; and the learned value's error: its estimated moves to go after every prefix against the true
    (BFS) distance, mean absolute error and Spearman rank correlation."""
    codec = EpisodeCodec(cfg.maze)
    T, ch = cfg.maze.max_moves, cfg.ladder.chunk
    lad = planners.get("ladder")
    ok_lad, ok_sub, pred, true, prior_ok, flat_ok = [], [], [], [], [], []
    seg = {k: {"seg_exact": [], "plan_exact": [], "plan_success": [], "prior_acc": [], "prior_bits": [],
               "segments": [], "pairs": [], **({"end_exact": []} if k == "endstate" else {})}
           for k in SEGMENT_KINDS if k in planners}
    for cond in test_cond:
        lay, s, g, _ = codec.decode_cond(cond)
        path = lay.shortest_path(tuple(s), tuple(g)) or []
        if not path or len(path) > T:
            continue
        moves = torch.from_numpy(codec.moves(path))[None]
        n_c = -(-len(path) // ch)  # codes that carry moves of the plan
        c = torch.as_tensor(cond).long()[None]  # teacher-forced next-symbol accuracy of the two priors:
        fl = (planners["flat"].prior(moves[:, :-1], c).argmax(-1) == moves)[0]
        flat_ok += fl[:n_c * ch].view(-1, ch).all(1).tolist()  # per chunk: all its moves right
        if lad is not None:
            codes = lad.comp.encode(moves)
            dec = lad.comp.decode(codes).argmax(-1)
            ok_lad += (dec.view(-1, ch) == moves.view(-1, ch)).all(1)[:n_c].tolist()
            prior_ok += (lad.prior(codes[:, :-1], c).argmax(-1) == codes)[0, :n_c].tolist()  # per code
        if "subgoal" in planners:
            got, _ = planners["subgoal"]._expand(cond, codes, {})
            ok_sub += (got.view(-1, ch) == moves.view(-1, ch)).all(1)[:n_c].tolist()
        for k, acc in seg.items():
            _segment_diag(planners[k], planners[f"{k}_coder"], codec, cond, path, acc)
        if planners.get("value") is not None:  # one causal pass gives the value after every prefix
            vcond = torch.from_numpy(codec.with_bucket(cond, 3))
            pred += planners["value"].moves_to_go_all(torch.tensor(path)[None], vcond)[0].tolist()
            true += [len(path) - t for t in range(len(path) + 1)]
    out = {"plans": int(len(test_cond)), "flat_chunk_acc": float(np.mean(flat_ok)) if flat_ok else float("nan")}
    if ok_lad:
        out.update(ladder_code_exact=float(np.mean(ok_lad)), prior_code_acc=float(np.mean(prior_ok)))
    if ok_sub:
        out["subgoal_code_exact"] = float(np.mean(ok_sub))
    for k, acc in seg.items():
        if acc["segments"]:
            pairs = acc.pop("pairs")
            out.update({f"{k}_{m}": float(np.mean(v)) for m, v in acc.items()})
            out[f"{k}_door_mi"] = door_information(pairs)
    if pred:
        p_, t_ = np.array(pred), np.array(true)
        rank = lambda a: np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)  # noqa: E731
        out.update({"value_mae": float(np.abs(p_ - t_).mean()), "value_spearman": float(np.corrcoef(rank(p_), rank(t_))[0, 1]),
                    "true_mean_to_go": float(t_.mean())})
    return out


def _segment_diag(pl, coder, codec, cond, path, acc: dict) -> None:
    """The rooms or doors contender on one shortest plan: its room segments coded by ``coder``; each segment
    decoded from its code and its true starting cell (``seg_exact``), the whole plan expanded from its codes
    (``plan_exact``: the same moves; ``plan_success``: a valid plan that reaches the goal, by any path), the top
    prior's teacher-forced next-code accuracy over the segments (``prior_acc``)."""
    ch, n = pl.chunk, pl.n_codes
    segs, cells, used, exits = room_segments(codec, np.asarray(cond)[None], codec.moves(path)[None], ch, n)
    k = int(used[0])
    codes = torch.as_tensor(coder(np.asarray(cond)[None], segs, cells, used, exits)[0]).long()
    acc["pairs"] += list(zip(codes[:k].tolist(), door_codes(exits, used)[0, :k].tolist()))
    for j in range(k):
        row = torch.from_numpy(subgoal_cond(codec, cond, tuple(cells[0, j]), int(codes[j])))
        acc["seg_exact"].append(greedy(pl.low.step_fn(row), 1, ch)[0].tolist() == segs[0, j].tolist())
    got, _ = pl._expand(cond, codes[None], {})
    acc["plan_exact"].append(got[0, :len(path)].tolist() == list(path))
    lay, s, g, _ = codec.decode_cond(cond)
    o = validate(lay, s, g, got[0].tolist())
    acc["plan_success"].append(o.valid and o.reached)
    logits = pl.code_logits(cond, codes, cells[0])
    acc["prior_acc"] += (logits.argmax(-1) == codes)[:k].tolist()
    # the codes' actual rate under the level above: the top prior's bits per code, teacher-forced
    acc["prior_bits"] += (-logits.log_softmax(-1).gather(-1, codes[:, None])[:k, 0] / np.log(2)).tolist()
    acc["segments"].append(k)
    model = getattr(coder, "model", None)
    if model is not None:  # a learned end-state coder: does a code and its context give back the end cell?
        rows, _ = endstate_rows(codec, np.asarray(cond)[None], segs, cells, used, exits)
        r = torch.from_numpy(rows[0, :k])
        acc["end_exact"] += (model.decode(r[:, :codec.cond_len], codes[:k]).argmax(-1) == r[:, -1]).tolist()


def door_information(pairs: list) -> float:
    """How much of the door codes a vocabulary carries: the mutual information between its codes and the rule's
    door codes over the same segments, as a fraction of the door codes' entropy (1: a code names the door, as
    the rule's own codes do; 0: independent), from the empirical joint histogram."""
    if not pairs:
        return float("nan")
    a, b = np.asarray(pairs).T
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())
    hb = float(-(pb[pb > 0] * np.log(pb[pb > 0])).sum())
    return mi / hb if hb > 0 else float("nan")


def room_crossings(start, path, room: int) -> list[int]:
    """Indices of the moves of ``path`` (from ``start``) that leave a room for another."""
    cells = [tuple(start)]
    for m in path:
        cells.append((cells[-1][0] + DELTA[m][0], cells[-1][1] + DELTA[m][1]))
    return [i for i in range(len(path)) if (cells[i][0] // room, cells[i][1] // room)
            != (cells[i + 1][0] // room, cells[i + 1][1] // room)]


def boundary_hits(crossings: list[int], boundaries: set) -> list[bool]:
    """Per crossing: does a segment start at the crossing move or the move after it?"""
    return [i in boundaries or i + 1 in boundaries for i in crossings]


@torch.no_grad()
def boundary_alignment(cfg, planners: dict, test_cond: np.ndarray) -> dict:
    """How often a code boundary falls on a room crossing, on the held-out tasks' shortest plans: a crossing at
    move i (the move that leaves a room) is hit when a code starts at move i or i + 1. For the ladder's fixed
    chunks, for entropy boundaries (the same number of boundaries at the moves where the flat model's
    next-move entropy is highest, the boundary rule of entropy-based variable-length codes) and for that many
    boundaries at random (the chance level, averaged over 20 draws)."""
    codec = EpisodeCodec(cfg.maze)
    ch, room = cfg.ladder.chunk, cfg.maze.room
    flat = planners["flat"].prior
    rng = np.random.default_rng(0)
    hit = {"fixed": [], "entropy": [], "chance": []}
    for cond in test_cond:
        lay, s, g, _ = codec.decode_cond(cond)
        path = lay.shortest_path(tuple(s), tuple(g)) or []
        if len(path) < 2:
            continue
        cross = room_crossings(s, path, room)
        if not cross:
            continue
        n_b = max(1, -(-len(path) // ch))  # codes covering the plan
        logits = flat(torch.as_tensor(path[:-1]).long()[None], torch.as_tensor(cond).long()[None])[0].float()
        ent = -(logits.log_softmax(-1).exp() * logits.log_softmax(-1)).sum(-1).numpy()  # before each move
        sets = {"fixed": set(range(0, len(path), ch)),
                "entropy": set(np.argsort(-ent[:len(path)], kind="stable")[:n_b].tolist())}
        for k, b in sets.items():
            hit[k] += boundary_hits(cross, b)
        for _ in range(20):
            b = set(rng.choice(len(path), size=min(n_b, len(path)), replace=False).tolist())
            hit["chance"] += [h / 20 for h in boundary_hits(cross, b)]
    n = len(hit["fixed"])
    return {"crossings": n, **{k: (float(np.sum(v) / n) if n else float("nan")) for k, v in hit.items()}}


@torch.no_grad()
def segment_alignment(segmenters: dict, test_cond: np.ndarray, codec: EpisodeCodec, room: int,
                      chance_draws: int = 20, seed: int = 0) -> dict:
    """Variable-length codes of moves against the maze: for each trained segmenter (``VariableCompressor`` over
    whole move sequences, by boundary method) on the held-out tasks' shortest plans, how often a room crossing is
    hit by a segment start (at the crossing move or the next, as for fixed chunks), beside chance at the *same*
    number of segment starts per plan (the first at move 0, as the model's, the others drawn at random,
    ``chance_draws`` draws); how many segments a plan gets and their
    mean length; and how exactly the plan's moves decode from its codes and lengths (whole plan)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, model in segmenters.items():
        hit, chance, n_seg, lengths, exact = [], [], [], [], []
        for cond in test_cond:
            lay, s, g, _ = codec.decode_cond(cond)
            path = lay.shortest_path(tuple(s), tuple(g)) or []
            if len(path) < 2:
                continue
            moves = torch.from_numpy(codec.moves(path))[None]
            with eval_mode(model):
                logits, q = model(moves)
            starts = set(np.flatnonzero(q.starts[0, :len(path)].numpy()).tolist())
            n_seg.append(len(starts))
            lengths.append(len(path) / max(len(starts), 1))
            exact.append(bool((logits.argmax(-1)[0, :len(path)] == moves[0, :len(path)]).all()))
            cross = room_crossings(s, path, room)
            if not cross:
                continue
            hit += boundary_hits(cross, starts)
            for _ in range(chance_draws):  # move 0 starts a segment, as in the model; the others drawn at random
                b = {0} | set((1 + rng.choice(len(path) - 1, size=min(len(starts), len(path)) - 1, replace=False)).tolist())
                chance += [h / chance_draws for h in boundary_hits(cross, b)]
        n = len(hit)
        out[name] = {"crossings": n, "hit": float(np.sum(hit) / n) if n else float("nan"),
                     "chance": float(np.sum(chance) / n) if n else float("nan"),
                     "segments_per_plan": float(np.mean(n_seg)) if n_seg else float("nan"),
                     "moves_per_segment": float(np.mean(lengths)) if lengths else float("nan"),
                     "plan_exact": float(np.mean(exact)) if exact else float("nan")}
    return out


def choose_on_validation(val_rows: list[dict]) -> dict:
    """Each contender's search method and scorer at each budget, chosen on the validation tasks by one procedure
    for all: the highest mean success over the seeds (ties: fewer mean evaluations, then the names). Returns
    {contender: {budget_x: {"method", "scorer", "val_success"}}}; the test tables then report these choices."""
    by: dict = {}
    for r in val_rows:
        if not r.get("unaffordable"):
            by.setdefault((r["contender"], r["budget_x"]), {}).setdefault((r["method"], r["scorer"]), []).append(r)
    out: dict = {}
    for (who, mult), opts in sorted(by.items()):
        def key(ms, opts=opts):
            rs = opts[ms]
            return (-float(np.mean([r["success"] for r in rs])), float(np.mean([r["mean_evals"] for r in rs])), ms)
        best = min(opts, key=key)
        out.setdefault(who, {})[str(mult)] = {"method": best[0], "scorer": best[1],
                                             "val_success": float(np.mean([r["success"] for r in opts[best]]))}
    return out
