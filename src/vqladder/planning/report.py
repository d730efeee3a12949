"""Planning experiment: the markdown table and the success-vs-budget plot, from the experiment's results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..report import save_figure


def _agg(rows):
    out = {}
    for r in rows:
        if r.get("unaffordable"):
            continue
        k = (r["contender"], r["method"], r["scorer"], r["budget_x"])
        out.setdefault(k, []).append(r)
    return out


def _ms(vals):
    vals = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    return f"{np.mean(vals):.2f} ± {np.std(vals):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"


def segment_kinds(params: dict) -> list[str]:
    """The contenders whose codes stand for room segments (rooms, doors, endstate), as the results name them."""
    return [k[:-len("_segments_per_demo")] for k in params if k.endswith("_segments_per_demo")]


def plan_markdown(res: dict, cfg) -> str:
    m = cfg.maze
    seeds = sorted(res["meta"])
    p = res["meta"][seeds[0]]["params"]
    kinds = segment_kinds(p)
    flops = res["meta"][seeds[0]].get("train_flops")
    bnd = res["meta"][seeds[0]].get("boundaries")
    who = ", ".join(c for c in cfg.contenders if c != "flat")
    title = f"flat vs {who}" if who else "the flat planner, scorers " + ", ".join(cfg.search.scorers)
    lines = [f"# Planning: {title} ({cfg.name})", "",
             f"Maze {m.rooms}x{m.rooms} rooms of {m.room}x{m.room} cells, {m.max_moves} moves max; "
             f"{res['demonstrations']:,} demonstrations (return buckets fail/poor/ok/optimal: {res['demo_buckets']}); "
             f"{res['tasks']} held-out layouts (overlap with training: {res['layout_overlap']}); seeds {seeds}. "
             f"Budget = model evaluations, as a multiple of {m.max_moves} (one greedy pass of the flat model).", "",
             f"Parameters: flat {p['flat']:,}"
             + (f"; ladder prior {p['ladder_prior']:,} + level-1 compressor {p['ladder_compressor']:,}. Level-1 codes "
                "decode training plans exactly: " + ", ".join(f"{res['meta'][s]['code_exact']:.3f}" for s in seeds)
                + " (per seed)." if "ladder_prior" in p else ".")
             + (f" Subgoal contender: the ladder's codes and prior + a subgoal decoder of {p['subgoal_decoder']:,} "
                "parameters." if "subgoal_decoder" in p else "")
             + "".join(f" {k.capitalize()} contender: codes over room-to-room segments (at most {cfg.ladder.chunk} "
                       f"moves; {p[k + '_segments_per_demo']:.2f} segments per training demonstration, "
                       f"{p[k + '_cut_demos']:.3f} of them cut at {m.max_moves // cfg.ladder.chunk} segments), "
                       + _code_source(k, p, cfg)
                       + f"top prior {p[k + '_prior']:,} + segment decoder {p[k + '_decoder']:,} parameters."
                       for k in kinds if k + "_prior" in p)
             + (f" Learned value: {p['value']:,} parameters, shared by all" if "value" in p else "")
             + (f", trained on the demonstrations and {p['value_rollouts']:,} search roll-outs sampled from the flat "
                f"planner ({p['value_rollout_reached']:.2f} of them reach the goal"
                + ("; the others relabelled to the cell they reached" if cfg.value.relabel else "") + "; sampling them: "
                f"{p['value_rollout_flops']:.3g} FLOPs, counted as forward passes)" if "value_rollouts" in p else "")
             + ("." if "value" in p else ""), ""]
    if flops:
        ladder_f = flops.get("ladder_compressor", 0) + flops.get("ladder_prior", 0)
        lines += [f"Training compute (FLOPs, counted; seed {seeds[0]}"
                  + ("; the flat planner's steps matched to the largest contender's FLOPs" if getattr(cfg, "match_flops", False)
                     else "") + f"): flat {flops.get('flat', 0):.3g}"
                  + (f"; ladder {ladder_f:.3g} (compressor {flops.get('ladder_compressor', 0):.3g} + prior "
                     f"{flops.get('ladder_prior', 0):.3g}) = {ladder_f / max(flops.get('flat', 0), 1):.2f}x the flat "
                     "model's" if "ladder_prior" in flops else "")
                  + (f"; subgoal: the ladder's + its decoder {flops['subgoal_decoder']:.3g} = "
                     f"{(ladder_f + flops['subgoal_decoder']) / max(flops.get('flat', 0), 1):.2f}x"
                     if "subgoal_decoder" in flops else "")
                  + "".join(f"; {k}: {({'rooms': 'compressor + ', 'endstate': 'coder + '}).get(k, '')}prior + "
                            f"decoder {_seg_flops(flops, k):.3g} = "
                            f"{_seg_flops(flops, k) / max(flops.get('flat', 0), 1):.2f}x"
                            for k in kinds if k + "_prior" in flops)
                  + (f"; the value {flops['value']:.3g}, used by all" if "value" in flops else "") + ".", ""]
    lines += _time_lines(res, seeds)
    if bnd and bnd.get("crossings"):
        lines += [f"Code boundaries on room crossings (held-out shortest plans, {bnd['crossings']} crossings; a crossing "
                  f"is hit when a code starts at the crossing move or the next): fixed {cfg.ladder.chunk}-move chunks "
                  f"{bnd['fixed']:.2f}, entropy boundaries of the flat model {bnd['entropy']:.2f}, chance "
                  f"{bnd['chance']:.2f}.", ""]
    seg = res["meta"][seeds[0]].get("segments") or {}
    if seg:
        lines += ["Variable-length codes of moves (target {0} moves per code; held-out shortest plans): a room "
                  "crossing hit when a segment starts at the crossing move or the next, against chance at the same "
                  "number of starts per plan (move 0 always a start):".format(cfg.ladder.chunk), "",
                  "| boundaries | crossings hit | chance | segments per plan | moves per segment | plans decoded exactly |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {m} | {v['hit']:.2f} | {v['chance']:.2f} | {v['segments_per_plan']:.2f} | "
                  f"{v['moves_per_segment']:.2f} | {v['plan_exact']:.2f} |" for m, v in seg.items()] + [""]
    diag = [res["meta"][s].get("diagnostics") for s in seeds]
    if all(diag):
        def per_seed(key, fmt=".2f"):
            return ", ".join(format(d[key], fmt) for d in diag if key in d) or "–"
        lad = "ladder_code_exact" in diag[0]
        lines += ["Diagnostics on the held-out tasks' shortest plans (per seed): "
                  + (f"level-1 codes decoded back to their moves exactly, by the ladder's compressor decoder "
                     f"{per_seed('ladder_code_exact')}" if lad else "")
                  + (f", by the subgoal decoder (code + cell) {per_seed('subgoal_code_exact')}"
                     if "subgoal_code_exact" in diag[0] else "")
                  + ("; next-symbol accuracy, teacher-forced: " if lad else "next-symbol accuracy, teacher-forced: ")
                  + (f"the top prior predicts the plan's next code {per_seed('prior_code_acc')}, " if lad else "")
                  + f"the flat model all moves of the same {cfg.ladder.chunk}-move chunk {per_seed('flat_chunk_acc')}"
                  + (f"; the learned value's moves-to-go error: mean absolute {per_seed('value_mae', '.1f')} moves "
                     f"(true mean {per_seed('true_mean_to_go', '.1f')}), Spearman rank correlation with the true "
                     f"distance {per_seed('value_spearman')}" if "value_mae" in diag[0] else "") + ".", ""]
        for k in kinds:
            if k + "_segments" in diag[0]:
                lines += [f"{k.capitalize()} contender on the same plans (per seed; its boundaries are on room crossings "
                          f"by construction): {per_seed(k + '_segments')} segments per plan; a segment decoded from its "
                          f"code and starting cell exactly {per_seed(k + '_seg_exact')}; whole plans expanded from their "
                          f"codes exactly {per_seed(k + '_plan_exact')}, to the goal by any valid path "
                          f"{per_seed(k + '_plan_success')}; the top prior"
                          + (" (closed loop: it reads the cell each segment begins in, not the codes before; "
                             f"fine-tuned for {cfg.closed_loop_train.steps} steps from the open-loop prior)"
                             if cfg.closed(k) else "")
                          + " predicts the next segment code "
                          f"{per_seed(k + '_prior_acc')} at {per_seed(k + '_prior_bits')} bits per code (its codes' "
                          f"actual rate; nominal {_nominal_bits(k, res, seeds):.2f})"
                          + (f"; a code and its context give back the cell the walk ends in {per_seed(k + '_end_exact')}"
                             if k + "_end_exact" in diag[0] else "")
                          + f"; its codes carry {per_seed(k + '_door_mi')} of the door codes' entropy (mutual "
                          "information with the rule's door codes over the same segments).", ""]
    lines += ["| contender | search | scorer | budget | success | optimality | validity |",
              "|---|---|---|---|---|---|---|"]
    agg = _agg(res["rows"])
    keys = set(agg) | {(r["contender"], r["method"], r["scorer"], r["budget_x"]) for r in res["rows"]}
    for (who, method, sc, mult) in sorted(keys, key=lambda k: (k[1], k[2], k[3], k[0])):
        rs = agg.get((who, method, sc, mult))
        if not rs:
            lines.append(f"| {who} | {method} | {sc} | {mult}x | unaffordable (a charged scorer needs more evaluations) | | |")
            continue
        lines.append(f"| {who} | {method} | {sc} | {mult}x | {_ms([r['success'] for r in rs])} | "
                     f"{_ms([r['optimality'] for r in rs])} | {_ms([r['validity'] for r in rs])} |")
    return "\n".join(lines + _chosen_lines(res, agg) + _length_lines(res)) + "\n"


def _chosen_lines(res: dict, agg: dict) -> list[str]:
    """The validated table: each contender's (search, scorer) per budget as chosen on the validation tasks, and the
    test success of that choice; or the note that no choice was validated."""
    chosen = res.get("chosen")
    if not chosen:
        why = ("Validation layouts not searched (`search.validation: false`; the search and scorer were chosen "
               "elsewhere)" if res.get("validation_searched") is False else
               "No validation split (`data.val_layouts: 0`)")
        return ["", f"{why}: the table lists every option on the test tasks, so a best-of reading of it (and the "
                    "length plot's best option) is chosen on the test tasks."]
    by = {(k[0], k[1], k[2], str(k[3])): v for k, v in agg.items()}
    out = ["", f"## Chosen on validation ({res.get('val_tasks', '?')} validation layouts, in neither training nor "
               "test)", "",
           "Each contender's search and scorer at each budget, chosen by its validation success (the same procedure "
           "for every contender: highest mean success over seeds, ties to fewer evaluations), and that choice's "
           "success on the test tasks (mean ± std over seeds):", "",
           "| contender | budget | search | scorer | validation success | test success |", "|---|---|---|---|---|---|"]
    for who, _ in COLORS:
        for mult, c in sorted((chosen.get(who) or {}).items(), key=lambda kv: float(kv[0])):
            rs = by.get((who, c["method"], c["scorer"], mult), [])
            out.append(f"| {who} | {mult}x | {c['method']} | {c['scorer']} | {c['val_success']:.2f} | "
                       f"{_ms([r['success'] for r in rs])} |")
    return out


def _time_lines(res: dict, seeds) -> list[str]:
    """Wall-clock per seed from the records (each stage's training time, each search row's seconds): what a seed
    cost when its parts were made, whatever shared the machine then (the preset headers say)."""
    out = []
    for s in seeds:
        tr = res["meta"][s].get("train_seconds")
        if not tr:
            continue
        test = sum(r.get("seconds", 0.0) for r in res["rows"] if r["seed"] == s)
        val = sum(r.get("seconds", 0.0) for r in res.get("val_rows", []) if r["seed"] == s)
        out.append(f"seed {s}: training {sum(tr.values()) / 60:.1f} min ("
                   + ", ".join(f"{k} {v / 60:.1f}" for k, v in tr.items()) + f"), search {test / 60:.1f} min on the "
                   f"test tasks and {val / 60:.1f} on the validation tasks")
    return (["Wall-clock from the records (stage training and search; diagnostics and data not included): "
             + "; ".join(out) + ".", ""] if out else [])


def _seg_flops(flops: dict, kind: str) -> float:
    return sum(flops.get(f"{kind}_{k}", 0) for k in ("compressor", "coder", "prior", "decoder"))


def _nominal_bits(kind: str, res: dict, seeds) -> float:
    """log2 of a segment contender's code vocabulary (its prior's output size, "the plan ends" included)."""
    return float(np.log2(res["meta"][seeds[0]]["params"].get(f"{kind}_vocab", 2)))


def _code_source(kind: str, p: dict, cfg) -> str:
    """Where a segment contender's codes come from, for the report's parameter line."""
    if kind == "rooms":
        return f"learned by a compressor of the segment's moves ({p['rooms_compressor']:,} parameters), "
    buckets = sorted(set(cfg.decoder_buckets(kind)))
    dec = (f"its decoder learns from the {p.get(kind + '_decoder_demos', 0):,} demonstrations in return buckets "
           f"{buckets}")
    if kind == "doors":
        return f"given by the rule (the door each room is left by; {dec}), "
    e = cfg.endstate.model
    return (f"learned from where each room's walk ends by an end-state coder of {p.get('endstate_coder', 0):,} "
            f"parameters (FSQ levels {list(e.levels)}, rate weight {e.rate_weight:g}; {dec}), ")


COLORS = (("flat", "tab:blue"), ("ladder", "tab:red"), ("subgoal", "tab:green"), ("rooms", "tab:purple"),
          ("doors", "tab:orange"), ("endstate", "tab:brown"))


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    agg = _agg(res["rows"])
    for ax, method in zip(axes, ("beam", "sample")):
        for who, color in COLORS:
            for sc, ls in (("likelihood", ":"), ("verifier", "-"), ("value", "--"), ("value+verifier", "-.")):
                pts = sorted((k[3], np.mean([r["success"] for r in v])) for k, v in agg.items()
                             if k[0] == who and k[1] == method and k[2] == sc)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, color=color, marker="o", label=f"{who}, {sc}")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{method} search")
        ax.set_xlabel("budget (x one greedy pass, model evaluations)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success rate (held-out layouts)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def length_bins(res: dict) -> list[dict]:
    """Success against the task's shortest-path length for each contender's (method, scorer) at the largest budget
    as chosen on validation (without a validation split: its best on the test tasks), in bins of equal task counts
    over all seeds: [{contender, method, scorer, budget_x, lo, hi, mean_len, tasks, success}]."""
    rows = [r for r in res["rows"] if r.get("per_task")]
    if not rows:
        return []
    top = max(r["budget_x"] for r in rows)
    out = []
    for who, _ in COLORS:
        cand = [r for r in rows if r["contender"] == who and r["budget_x"] == top]
        if not cand:
            continue
        agg = _agg(cand)
        pick = (res.get("chosen") or {}).get(who, {}).get(str(top))
        best = ((who, pick["method"], pick["scorer"], top) if pick and (who, pick["method"], pick["scorer"], top) in agg
                else max(agg, key=lambda k: np.mean([r["success"] for r in agg[k]])))  # no validation: best on test
        pts = [t for r in agg[best] for t in r["per_task"]]
        lengths = np.array([p[0] for p in pts])
        ok = np.array([p[1] for p in pts], dtype=float)
        edges = np.unique(np.quantile(lengths, np.linspace(0, 1, 5)))
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (lengths >= lo) & ((lengths < hi) | (hi == edges[-1]))
            if m.any():
                out.append({"contender": who, "method": best[1], "scorer": best[2], "budget_x": top, "lo": int(lo),
                            "hi": int(hi), "mean_len": float(lengths[m].mean()), "tasks": int(m.sum()),
                            "success": float(ok[m].mean())})
    return out


def _length_lines(res: dict) -> list[str]:
    bins = length_bins(res)
    if not bins:
        return []
    return ["", f"Success against shortest plan length at {bins[0]['budget_x']}x (bins of equal task counts; tasks "
                "counted over all seeds):", "",
            "| contender | search, scorer | shortest plan (moves) | tasks | success |", "|---|---|---|---|---|"] + [
        f"| {b['contender']} | {b['method']}, {b['scorer']} | {b['lo']}–{b['hi']} (mean {b['mean_len']:.1f}) | "
        f"{b['tasks']} | {b['success']:.2f} |" for b in bins]


def _plot_length(res: dict, path: Path) -> None:
    """The success-vs-length bins (``length_bins``) drawn: where plans are long, does the hierarchy pay?"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = length_bins(res)
    if not bins:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for who, color in COLORS:
        bs = [b for b in bins if b["contender"] == who]
        if bs:
            ax.plot([b["mean_len"] for b in bs], [b["success"] for b in bs], "-o", color=color,
                    label=f"{who} ({bs[0]['method']}, {bs[0]['scorer']}, {bs[0]['budget_x']}x)")
    ax.set_xlabel("shortest plan length (moves), binned")
    ax.set_ylabel("success rate (held-out layouts)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
