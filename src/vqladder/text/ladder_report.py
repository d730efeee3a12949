"""Ladder experiment: the markdown tables, from the experiment's results."""

from __future__ import annotations

from itertools import zip_longest


def _num(x, fmt=",.0f") -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "-"


def ladder_markdown(res: dict, cfg) -> str:
    mode = res.get("mode", "codes")
    how = {"text": "every level a compressor over the tokens (mode: text)",
           "multi_exit": "one compressor whose exits are the levels (mode: multi_exit)"}.get(
        mode, "level k+1 over the codes of level k (mode: codes)")
    lines = [f"# Ladder {cfg.name}", "", f"Corpus `{cfg.data.corpus}`, tokenizer `{cfg.data.tokenizer}`; {how}; "
             f"held-out: {res['held_out_tokens']:,} tokens ({res['held_out_top_chunks']} top chunks).", "",
             "## Per level (held-out)", ""]
    if "floor_acc" in res:
        lines += [f"Most-frequent-token floor (the train split's most frequent token everywhere): "
                  f"{res['floor_acc']:.3f} token accuracy.", ""]
    lines += ["| level | vocabulary | codes per top chunk | tokens per top chunk | bits/token | reconstruction acc (own input) "
              "| end-to-end token acc (VQ decoders) | end-to-end token acc (upsamplers, greedy) | code usage | gist BoW F1 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["levels"]:
        lines.append(f"| {r['level']} | {r['vocab']} | {r['codes_per_chunk']} | {r['tokens_per_chunk']} | "
                     f"{r['bits_per_token']:.3f} | {r['recon_acc']:.3f} ({r['recon_input']}) | {r['e2e_acc_vq']:.3f} | "
                     f"{r['e2e_acc_upsample']:.3f} | {r['usage']:.3f} | {_num(r.get('gist_bow_f1'), '.3f')} |")
    if res.get("listen"):
        lines += ["", "## Levels that listen (held-out)", "",
                  "Upsampler k decodes level k's codes one rung down. Bits/token of its held-out symbols with the true "
                  "codes, with another chunk's codes (chunk i under chunk i + n/2's) and with no codes (its learned "
                  "'no codes' vector, when trained with code_dropout); accuracy teacher-forced and greedy (one rung, "
                  "from the true codes), beside the level's parallel decoder. **ignores its codes** marks a decoder "
                  "whose true codes are not at least 0.1 bits/symbol cheaper than another chunk's. Actual rate: what "
                  "the level's codes cost under the level above (the next upsampler, or the prior for the top "
                  "level), beside their nominal bits.", "",
                  "| level | bits/token, true codes | other chunk's codes | no codes | teacher-forced acc | greedy acc "
                  "| parallel decoder acc | codes used? | nominal bits/token | actual bits/token (under) | actual / "
                  "nominal | own context model |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["listen"]:
            lines.append(
                f"| {r['level']} | {r['bits_true']:.3f} | {r['bits_other']:.3f} | {_num(r.get('bits_none'), '.3f')} | "
                f"{r['acc_teacher_forced']:.3f} | {_num(r.get('acc_greedy'), '.3f')} | "
                f"{_num(r.get('acc_parallel'), '.3f')} | {'yes' if r['uses_codes'] else '**ignores its codes**'} | "
                f"{r['nominal_bits_per_token']:.3f} | {r['actual_bits_per_token']:.3f} ({r['actual_under']}) | "
                f"{r['actual_bits_per_token'] / max(r['nominal_bits_per_token'], 1e-9):.2f}x | "
                f"{_num(r.get('own_rate_bits_per_token'), '.3f')} |")
    b = res["bits"]
    m = res.get("matched", {})
    gf = m.get("hierarchical_train_flops")
    lines += ["", "## Likelihood: hierarchical model vs a flat causal LM (held-out bits/token)", "",
              "| model | bits/token | all parameters (at generation) | non-embedding parameters | training FLOPs (counted) "
              "| train time (s) | context (tokens) |",
              "|---|---|---|---|---|---|---|",
              f"| hierarchical (prior + upsamplers; two-part code) | {b['hierarchical']:.3f} | "
              f"{m.get('hierarchical_params', 0):,} (+ {m.get('compressor_params', 0):,} in the compressors, used to "
              f"encode prompts) | {m.get('hierarchical_body_params', 0):,} | {_num(gf, '.3g')} (compressors included) "
              f"| {_num(m.get('hierarchical_train_time'), '.0f')} | {_num(m.get('hierarchy_context_tokens'))} |",
              f"| flat causal LM ({m.get('flat_layers', 0)} layers) | {b['flat']:.3f} | {m.get('flat_params', 0):,} | "
              f"{m.get('flat_body_params', 0):,} | {_num(m.get('flat_train_flops'), '.3g')} | "
              f"{_num(m.get('flat_train_time'), '.0f')} | {_num(m.get('flat_context'))} |",
              *[f"| flat rival {i} ({r['n_layers']} layers, d={r['d_model']}; {st.get('step', 0):,} steps) | "
                f"{r['bits']:.3f} | {r['params']:,} | - | {_num(st.get('train_flops'), '.3g')} | "
                f"{_num(st.get('train_time'), '.0f')} | {_num(r['context'])} |"
                for i, (r, st) in enumerate(zip_longest(b.get("flat_rivals", []),
                                                        res.get("stages", {}).get("flat_rivals", []), fillvalue={}), 1)
                if r],
              "", f"Ratio hierarchical / flat: {b['hierarchical'] / max(b['flat'], 1e-9):.2f}x. Hierarchical components "
              "(bits/token): " + ", ".join(f"{k} {v:.3f}" for k, v in b["components"].items()), ""]
    if b.get("flat_rivals"):
        best = min(r["bits"] for r in b["flat_rivals"] + [{"bits": b["flat"]}])
        lines += [f"Flat rivals: flat LMs of the sizes given (not matched in parameters), each trained for the "
                  f"hierarchy's counted FLOPs. The best flat LM of this table spends {best:.3f} bits/token "
                  f"(hierarchical / best flat: {b['hierarchical'] / max(best, 1e-9):.2f}x); picked on these held-out "
                  f"windows, so the choice favours the flat side.", ""]
    sk = b.get("skip_level")
    if sk:
        k = sk["level"]
        lines += [f"### Skip-level likelihood: tokens decoded straight from level-{k} codes", "",
                  f"The levels below {k} are never transmitted: the prior, the upsamplers above level {k} and a token "
                  f"decoder conditioned on level-{k} codes (the upsamplers' design, trained for upsampler 1's "
                  f"steps), over the same held-out windows.", "",
                  "| code | bits/token | vs flat | components (bits/token) | training FLOPs (counted) |",
                  "|---|---|---|---|---|",
                  f"| two-part (every level) | {b['hierarchical']:.3f} | {b['hierarchical'] / max(b['flat'], 1e-9):.2f}x | "
                  + ", ".join(f"{n} {v:.3f}" for n, v in b["components"].items()) + f" | {_num(gf, '.3g')} |",
                  f"| skip-level (from level {k}) | {sk['bits_per_token']:.3f} | "
                  f"{sk['bits_per_token'] / max(b['flat'], 1e-9):.2f}x | "
                  + ", ".join(f"{n} {v:.3f}" for n, v in sk["components"].items())
                  + f" | {_num(m.get('skip_level_train_flops'), '.3g')} |", "",
                  f"The skip decoder's code value (bits/token): true codes {sk['bits_true']:.3f}, another chunk's "
                  f"{sk['bits_other']:.3f}, no codes {_num(sk.get('bits_none'), '.3f')}; token accuracy teacher-forced "
                  f"{sk['acc_teacher_forced']:.3f}, greedy {_num(sk.get('acc_greedy'), '.3f')}.", ""]
    gen = res.get("generation")
    if gen:
        flat_tps = gen.get("flat", {}).get("tokens_per_s") or 0
        lines += ["## Generation: speed and sample quality", "",
                  "Batch 1, KV-cached, the same number of tokens per path; quality = the samples' bits/token under a "
                  "separately trained judge LM, closer to held-out text's is better (far below it means repetitive "
                  "text the judge finds easy: see distinct bigrams, the share of a sample's bigrams that are distinct).",
                  "", "| path | tokens/s | speed vs flat | judge bits/token | distinct bigrams |", "|---|---|---|---|---|"]
        names = {"ladder_upsample": "ladder: prior -> upsamplers", "ladder_vq": "ladder: prior -> VQ decoder(s)",
                 "flat": "flat LM", "held_out": "held-out text (reference)"}
        for k, title in names.items():
            g = gen.get(k)
            if g is None:
                continue
            tps = g.get("tokens_per_s")
            lines.append(f"| {title} | {_num(tps, ',.0f')} | "
                         f"{_num(tps / flat_tps if tps and flat_tps else None, '.2f') + 'x' if tps else '-'} | "
                         f"{_num(g.get('judge_bits_per_token'), '.3f')} | {_num(g.get('distinct2'), '.3f')} |")
        lines.append("")
    lines += ["## Samples", ""]
    for key, title in (("ladder_upsample", "ladder: prior -> upsamplers"), ("ladder_vq", "ladder: prior -> VQ decoders"),
                       ("flat", "flat LM")):
        lines.append(f"### {title}")
        for s in res["samples"][key]:
            text = s["text"].replace("```", "'''")
            lines += ["", "```", text[:1200], "```"]
        lines.append("")
    return "\n".join(lines) + "\n"
