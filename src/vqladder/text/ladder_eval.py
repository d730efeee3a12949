"""The ladder's held-out evaluation: each level's reconstruction through its own decoder, code usage, the
hierarchical two-part code length against the flat LM, and samples from each path."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sampler import gather_windows, pair_batch, val_windows
from ..errors import VQLadderError
from ..eval.baselines import most_frequent_token, unigram_logp
from ..eval.metrics import evaluate_compressor
from ..models import CausalLM
from .ladder import Ladder, greedy_upsample


@torch.no_grad()
def _seq_nll(model_fn, stream: np.ndarray, window: int, max_windows: int, batch_size: int = 32) -> tuple[float, int]:
    """Sum of -log p (nats) over non-overlapping windows of ``stream`` and the number of symbols scored."""
    starts = val_windows(stream, window, max_windows)
    tot, n = 0.0, 0
    for s in range(0, len(starts), batch_size):
        x = gather_windows(stream, starts[s:s + batch_size], window)
        tot += float(-model_fn(x).sum())
        n += x.numel()
    return tot, n


def _lm_logprob(lm: CausalLM, x: torch.Tensor, first_logp: torch.Tensor | None = None) -> torch.Tensor:
    """Per-window log p of every token of x under a causal LM: x[1:] given its prefix; the first token (the LM
    has no BOS) under ``first_logp`` (the train split's unigram log-probabilities), or without it the softmax
    of the LM's mean logits over the batch. It is one token in ``context``, as the prior's first code of a
    window is scored from BOS alone."""
    logits = lm(x[:, :-1]).float()
    lp = F.log_softmax(logits, -1).gather(-1, x[:, 1:, None]).squeeze(-1).sum(1)
    first = first_logp if first_logp is not None else F.log_softmax(logits.mean((0, 1)), -1)
    return lp + first.to(lp.device)[x[:, 0]]


def _windows(max_chunks: int, chunks_per_window: int) -> int:
    return 0 if max_chunks < 0 else max(1, max_chunks // max(chunks_per_window, 1))


@torch.no_grad()
def bits_of(tot: float, n: int, per: str) -> dict:
    """``{"ce": nats per symbol, "bits_per_<per>": bits per symbol}`` of a summed -log p over ``n`` symbols."""
    return {"ce": tot / max(n, 1), f"bits_per_{per}": tot / max(n, 1) / math.log(2)}


def upsampler_bits(m, low_va: np.ndarray, par_va: np.ndarray, length: int, par_len: int, max_chunks: int,
                   batch_size: int, greedy_chunks: int = 0, code_value: bool = True) -> dict:
    """Held-out cross-entropy of an upsampler: the level-(k-1) symbols of each chunk given its level-k codes
    (and the previous chunk below, when the upsampler reads it), over the first ``max_chunks`` chunks (-1: all),
    with the code-value diagnostic beside it: bits with *another* chunk's codes (chunk i scored under the codes
    of chunk i + n/2; the previous chunk stays true), with no codes (when trained with ``code_dropout``), the
    teacher-forced accuracy, and with ``greedy_chunks`` > 0 the free-running (greedy, KV-cached) accuracy from
    the true codes over that many chunks. A decoder that uses its codes has true-code bits clearly below
    other-code bits. ``code_value=False``: the true codes' bits and accuracy only."""

    n_pairs = min(len(low_va) // length, len(par_va) // par_len)
    cap = n_pairs if max_chunks < 0 else min(n_pairs, max_chunks)
    idx = np.arange(cap, dtype=np.int64)
    other = (idx + max(1, cap // 2)) % max(cap, 1)
    par_t = torch.from_numpy(np.asarray(par_va[:cap * par_len], dtype=np.int64)).view(cap, par_len)
    none = getattr(m, "no_codes", None) is not None
    tot = {"true": 0.0, "other": 0.0, "none": 0.0}
    n, hits, g_hits, g_n = 0, 0, 0, 0
    for b in range(0, cap, batch_size):
        i = idx[b:b + batch_size]
        batch = pair_batch(low_va, par_va, i * length, length, par_len, m.config.prev_chunk)
        parent, prev, low = m.split(batch)
        lp, hit = m.token_logp(parent, low, prev, hits=True)
        tot["true"] -= float(lp.sum())
        hits += int(hit.sum())
        if not code_value:  # the true codes' bits alone (a validation score)
            n += low.numel()
            continue
        tot["other"] -= float(m.token_logp(par_t[other[b:b + batch_size]], low, prev).sum())
        if none:
            tot["none"] -= float(m.token_logp(parent, low, prev, no_codes=True).sum())
        n += low.numel()
        if g_n < greedy_chunks * length:
            k = min(len(i), greedy_chunks - g_n // length)
            out = greedy_upsample(m, parent[:k], None if prev is None else prev[:k])
            g_hits += int((out == low[:k]).sum())
            g_n += low[:k].numel()
    res = bits_of(tot["true"], n, "symbol")
    if not code_value:
        return res
    res["bits_other_codes"] = tot["other"] / max(n, 1) / math.log(2)
    if none:
        res["bits_no_codes"] = tot["none"] / max(n, 1) / math.log(2)
    res["acc"] = hits / max(n, 1)
    if g_n:
        res["greedy_acc"] = g_hits / g_n
    return res


def evaluate_ladder(ladder: Ladder, streams: dict, cfg, log=print, judge: CausalLM | None = None,
                    rivals: list[CausalLM] = (), skip=None) -> dict:
    """Per-level table, hierarchical vs flat bits/token, samples from each path with their generation speed
    and (with a ``judge`` LM) their bits/token under it, on held-out text.

    Held-out text is cut into windows of one prior context (``chunks_per_window`` top chunks); each window is
    scored as a document of its own by both models: the prior from BOS, every upsampler's first chunk with no
    previous chunk, the flat LM from the window's first token (its train-split unigram probability)."""
    L = ladder.n_levels
    c0 = ladder.chunk_len(0)
    m_top = ladder.chunk_len(L)
    ctx = ladder.prior.config.context
    chunks_per_window = ctx // m_top
    n_top = len(streams[L][1]) // m_top
    if cfg.eval.max_chunks > 0:
        n_top = min(n_top, max(cfg.eval.max_chunks, chunks_per_window))
    n_top = n_top // chunks_per_window * chunks_per_window
    if n_top == 0:
        raise VQLadderError(f"the val split is shorter than one prior window of {chunks_per_window} top chunks "
                            f"({chunks_per_window * c0} tokens)")
    n_win = n_top // chunks_per_window
    tokens = np.asarray(streams[0][1][:n_top * c0], dtype=np.int64)
    train_tokens = np.asarray(streams[0][0])
    floor_tok = most_frequent_token(train_tokens, ladder.vocab(0))
    floor_acc = float((tokens == floor_tok).mean())
    per_level = []
    for k in range(1, L + 1):
        lv = ladder.levels[k - 1]
        own = 0 if ladder.mode != "codes" else k - 1
        below = np.asarray(streams[own][1][:n_top * ladder.chunk_len(own)], dtype=np.int64)
        codes = np.asarray(streams[k][1][:n_top * ladder.chunk_len(k)], dtype=np.int64)
        rec = evaluate_compressor(lv, below, cfg.eval.batch_size, -1,
                                  tokenizer=ladder.tokenizer if own == 0 else None,
                                  frequent_token=floor_tok if own == 0 else None)
        vq_tokens = ladder.decode(codes, k, 0, method="vq")
        up_tokens = ladder.decode(codes, k, 0, method="upsample", temperature=0, streams=n_win)
        per_level.append({
            "level": k, "vocab": ladder.vocab(k), "codes_per_chunk": ladder.chunk_len(k),
            "tokens_per_chunk": c0, "bits_per_token": ladder.bits_per_token(k),
            "recon_acc": rec["acc"], "recon_input": "tokens" if own == 0 else f"level {own} codes",
            "e2e_acc_vq": float((vq_tokens == tokens).mean()),
            "e2e_acc_upsample": float((up_tokens == tokens).mean()),
            "usage": float(len(np.unique(codes)) / ladder.vocab(k)),
            **{key: v for key, v in rec.items() if key.startswith("gist_")},
        })
        log(f"level {k}: {per_level[-1]}")
    bits = hierarchical_bits(ladder, streams, n_top, cfg.eval.batch_size)
    hier = sum(bits.values())
    listen = code_value(ladder, streams, n_top, cfg.eval.batch_size, bits, per_level)
    for row in listen:
        log(f"code value, upsampler {row['level']}: {row}")
    first = torch.from_numpy(unigram_logp(train_tokens, ladder.vocab(0))).float()

    def lm_bits(lm: CausalLM) -> float:  # over the windows the hierarchy is scored on
        tot, n = _seq_nll(lambda x: _lm_logprob(lm, x, first), tokens, min(lm.config.context, c0 * chunks_per_window), 0)
        return tot / max(n, 1) / math.log(2)

    flat_bits = lm_bits(ladder.flat)
    log(f"bits/token: hierarchical {hier:.3f} ({bits}), flat {flat_bits:.3f}")
    if skip is not None:  # the skip-level decoder from level cfg.skip_level's codes
        out_skip = skip_level_bits(ladder, streams, n_top, cfg.eval.batch_size, bits, cfg.skip_level, skip)
        log(f"skip-level (level {cfg.skip_level} codes -> tokens): {out_skip}")
    out = {"levels": per_level, "listen": listen,
           "bits": {"hierarchical": hier, "components": bits, "flat": flat_bits},
           "held_out_tokens": int(tokens.size), "held_out_top_chunks": int(n_top), "floor_acc": floor_acc}
    if skip is not None:
        out["bits"]["skip_level"] = out_skip
    if rivals:
        out["bits"]["flat_rivals"] = [{"d_model": r.config.d_model, "n_layers": r.config.n_layers,
                                       "context": r.config.context, "params": sum(p.numel() for p in r.parameters()),
                                       "bits": lm_bits(r)} for r in rivals]
        log(f"flat rivals: {out['bits']['flat_rivals']}")
    out.update(sample_paths(ladder, cfg.eval, judge, first, tokens))
    return out


# a decoder "uses its codes" when another chunk's codes cost it at least this many more bits per symbol
CODE_VALUE_MIN_BITS = 0.1


def code_value(ladder: Ladder, streams: dict, n_top: int, batch_size: int, components: dict,
               per_level: list[dict], greedy_chunks: int = 32) -> list[dict]:
    """Levels that listen, per level k: upsampler k's held-out bits per token with the true level-k codes,
    with another chunk's codes and with no codes (when trained with ``code_dropout``), its teacher-forced and
    greedy (one rung, from the true codes and the true previous chunk) accuracy beside the level's own parallel
    decoder, a flag when the true codes are not clearly cheaper than another chunk's; and the level's codes'
    actual rate under the level above (upsampler k+1, or the prior for the top level; and under the
    compressor's own context model when it has one) beside their nominal bits."""
    L, c0 = ladder.n_levels, ladder.chunk_len(0)
    rows = []
    for k in range(1, L + 1):
        up = ladder.upsamplers[k - 1]
        par_len, length = ladder.up_geometry(k)
        low = np.asarray(streams[k - 1][1][:n_top * ladder.chunk_len(k - 1)], dtype=np.int64)
        par = np.asarray(streams[k][1][:n_top * ladder.chunk_len(k)], dtype=np.int64)
        d = upsampler_bits(up, low, par, length, par_len, -1, batch_size, greedy_chunks=greedy_chunks)
        per_tok = ladder.chunk_len(k - 1) / c0  # level-(k-1) symbols per token
        above = components["prior"] if k == L else components[f"upsampler{k + 1}"]
        row = {"level": k, "bits_true": d["bits_per_symbol"] * per_tok,
               "bits_other": d["bits_other_codes"] * per_tok,
               "bits_none": d["bits_no_codes"] * per_tok if "bits_no_codes" in d else None,
               "acc_teacher_forced": d["acc"], "acc_greedy": d.get("greedy_acc"),
               "acc_parallel": per_level[k - 1]["recon_acc"] if k == 1 or ladder.mode == "codes" else None,
               "nominal_bits_per_token": ladder.bits_per_token(k), "actual_bits_per_token": above,
               "actual_under": "prior" if k == L else f"upsampler {k + 1}"}
        row["uses_codes"] = (d["bits_other_codes"] - d["bits_per_symbol"]) >= CODE_VALUE_MIN_BITS
        lv = ladder.levels[k - 1]
        if getattr(lv, "rate", None) is not None:
            own = np.asarray(streams[k][1][:n_top * ladder.chunk_len(k)], dtype=np.int64)
            codes = torch.from_numpy(own).view(-1, lv.config.out_len)
            nats = sum(float(lv.rate_nats(codes[s:s + batch_size]).sum()) for s in range(0, len(codes), batch_size))
            row["own_rate_bits_per_token"] = nats / math.log(2) / (n_top * c0)
        rows.append(row)
    return rows


@torch.no_grad()
def hierarchical_bits(ladder: Ladder, streams: dict, n_top: int, batch_size: int = 32) -> dict:
    """Two-part code length of the first ``n_top`` held-out top chunks, bits per token, by component: the prior
    over the top codes (windows of its context), then each upsampler over its chunks (a window's first chunk
    without a previous one)."""
    L, c0 = ladder.n_levels, ladder.chunk_len(0)
    ctx = ladder.prior.config.context
    chunks_per_window = ctx // ladder.chunk_len(L)
    n_tok = n_top * c0
    top = torch.from_numpy(np.asarray(streams[L][1][:n_top * ladder.chunk_len(L)], dtype=np.int64)).view(-1, ctx)
    bits = {"prior": -sum(float(ladder.prior.log_prob(top[s:s + batch_size]).sum())
                          for s in range(0, len(top), batch_size)) / math.log(2) / n_tok}
    for k in range(1, L + 1):
        low = np.asarray(streams[k - 1][1][:n_top * ladder.chunk_len(k - 1)], dtype=np.int64)
        par = np.asarray(streams[k][1][:n_top * ladder.chunk_len(k)], dtype=np.int64)
        per_window = chunks_per_window * ladder.chunk_len(k) // ladder.up_geometry(k)[0]  # level-k chunks per window
        bits[f"upsampler{k}"] = _chunk_nats(ladder.upsamplers[k - 1], low, par, per_window, batch_size) / math.log(2) / n_tok
    return bits


def _chunk_nats(up, low: np.ndarray, par: np.ndarray, per_window: int, batch_size: int) -> float:
    """-log p (nats) of every chunk of ``low`` under decoder ``up`` given its ``par`` codes, a prior window's first
    chunk (every ``per_window``-th) without a previous one."""
    length, par_len = up.config.length, up.config.parent_len
    idx = np.arange(len(par) // par_len, dtype=np.int64)
    nats = 0.0
    for s in range(0, len(idx), batch_size):
        i = idx[s:s + batch_size]
        batch = pair_batch(low, par, i * length, length, par_len, up.config.prev_chunk, first=i % per_window == 0)
        parent, prev, lower = up.split(batch)
        nats -= float(up.log_prob(parent, lower, prev).sum())
    return nats


@torch.no_grad()
def skip_level_bits(ladder: Ladder, streams: dict, n_top: int, batch_size: int, components: dict, k: int, skip,
                    greedy_chunks: int = 32) -> dict:
    """Skip-level likelihood: the text's bits/token when level k's codes are decoded straight to tokens by
    ``skip`` and the levels below k are never transmitted: the prior, the upsamplers above k (the two-part code's
    own ``components``) and the skip decoder over the same windows; with the skip decoder's code-value diagnostic
    (another chunk's codes, no codes, teacher-forced and greedy accuracy)."""
    c0 = ladder.chunk_len(0)
    ctx = ladder.prior.config.context
    n_tok = n_top * c0
    tokens = np.asarray(streams[0][1][:n_tok], dtype=np.int64)
    par = np.asarray(streams[k][1][:n_top * ladder.chunk_len(k)], dtype=np.int64)
    per_window = ctx // ladder.chunk_len(ladder.n_levels) * ladder.chunk_len(k) // skip.config.parent_len
    parts = {"prior": components["prior"],
             **{f"upsampler{j}": components[f"upsampler{j}"] for j in range(k + 1, ladder.n_levels + 1)},
             f"skip{k}": _chunk_nats(skip, tokens, par, per_window, batch_size) / math.log(2) / n_tok}
    d = upsampler_bits(skip, tokens, par, skip.config.length, skip.config.parent_len, -1, batch_size,
                       greedy_chunks=greedy_chunks)
    return {"level": k, "bits_per_token": sum(parts.values()), "components": parts,
            "bits_true": d["bits_per_symbol"], "bits_other": d["bits_other_codes"],
            "bits_none": d.get("bits_no_codes"), "acc_teacher_forced": d["acc"], "acc_greedy": d.get("greedy_acc")}


def distinct_bigrams(tokens) -> float:
    """Distinct token bigrams / bigrams of one sample: a degenerate, repetitive sample scores low (and a judge LM
    finds it easy, so low judge bits/token alone is not quality)."""
    t = np.asarray(tokens).tolist()
    pairs = list(zip(t, t[1:]))
    return len(set(pairs)) / max(len(pairs), 1)


@torch.no_grad()
def sample_paths(ladder: Ladder, e, judge: CausalLM | None, first_logp: torch.Tensor, held_out: np.ndarray) -> dict:
    """``e.samples`` samples of ``e.sample_chunks`` top chunks from each path (the ladder through its upsamplers,
    the ladder through its VQ decoders, the flat LM; KV-cached, batch 1), timed: generation tokens/s per path,
    and with a judge LM the samples' bits/token under it beside held-out text's; distinct bigrams per sample
    beside held-out text's (repetitive samples are cheap for a judge)."""
    import time

    from ..models.sampling import sample

    c0, L = ladder.chunk_len(0), ladder.n_levels
    samples = {"ladder_upsample": [], "ladder_vq": [], "flat": []}
    secs = dict.fromkeys(samples, 0.0)
    for i in range(e.samples):
        for method in ("upsample", "vq"):
            t0 = time.perf_counter()
            out = ladder.generate(None, e.sample_chunks, e.temperature, e.top_k, e.top_p, method=method, seed=i)
            secs[f"ladder_{method}"] += time.perf_counter() - t0
            samples[f"ladder_{method}"].append({"text": out.get("text", ""), "tokens": out["levels"][0].tolist(),
                                                "top_codes": out["levels"][L].tolist()})
        g = torch.Generator().manual_seed(i)
        t0 = time.perf_counter()
        seed_tok = torch.tensor([[ladder.pad_token()]])
        toks = sample(ladder.flat.step_fn(), 1, e.sample_chunks * c0, e.temperature, e.top_k, e.top_p,
                      prefix=seed_tok, generator=g)[0]
        secs["flat"] += time.perf_counter() - t0
        samples["flat"].append({"text": ladder.text(toks.tolist()) if ladder.tokenizer else "",
                                "tokens": toks.tolist()})
    n_tok = e.samples * e.sample_chunks * c0
    speed = {k: {"tokens_per_s": n_tok / v if v else 0.0, "seconds": v,
                 "distinct2": float(np.mean([distinct_bigrams(r["tokens"]) for r in samples[k]])) if samples[k] else 0.0}
             for k, v in secs.items()}
    if judge is not None and e.samples:
        jctx = judge.config.context

        def judged(toks: np.ndarray) -> float:
            w = min(jctx, len(toks))
            tot, n = _seq_nll(lambda x: _lm_logprob(judge, x, first_logp), toks, w, 0)
            return tot / max(n, 1) / math.log(2)

        for k, rows in samples.items():
            speed[k]["judge_bits_per_token"] = float(np.mean([judged(np.asarray(r["tokens"])) for r in rows]))
        per = e.sample_chunks * c0
        speed["held_out"] = {"judge_bits_per_token": judged(held_out[:n_tok]),
                             "distinct2": float(np.mean([distinct_bigrams(held_out[i * per:(i + 1) * per])
                                                         for i in range(e.samples)]))}
    return {"samples": samples, "generation": speed}


def level_reconstructions(ladder, val: np.ndarray, max_chunks: int = 12) -> dict:
    """What the ladder's report draws (``reconstructions.json``): ``max_chunks`` held-out top chunks, spread over
    ``val``, encoded at every level and decoded down the ladder with the levels' own decoders, token by token, with
    each level's rate and accuracy; ``note`` instead where that cannot be drawn (a variable-rate level)."""
    if ladder.variable_level is not None or ladder.tokenizer is None:
        return {"note": "no per-level reconstructions (a variable-rate level, or no tokenizer)"}
    n = ladder.chunk_len(0)
    val = np.asarray(val)
    n_win = len(val) // n
    k_show = min(max_chunks, n_win)
    starts = np.floor(np.arange(k_show) * (n_win / max(1, k_show))).astype(np.int64) * n
    x = np.concatenate([val[s:s + n] for s in starts]).astype(np.int64) if k_show else np.zeros(0, np.int64)
    levels = []
    for k in range(1, ladder.n_levels + 1):
        pred = ladder.decode(ladder.encode(x, k), k)
        levels.append({"level": k, "bits_per_token": ladder.bits_per_token(k), "codes_per_chunk": ladder.chunk_len(k),
                       "acc": float((pred == x).mean()) if len(x) else 0.0,
                       "rows": [{"chunk": int(s // n), "orig": x[i * n:(i + 1) * n].tolist(),
                                 "pred": pred[i * n:(i + 1) * n].tolist()} for i, s in enumerate(starts)]})
    used = sorted(set(x.tolist()) | {int(t) for lv in levels for r in lv["rows"] for t in r["pred"]})
    return {"tokens": {str(t): ladder.tokenizer.decode([t]) for t in used}, "levels": levels}
