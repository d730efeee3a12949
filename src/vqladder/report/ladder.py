"""Ladder experiment: the markdown tables, from the experiment's results."""

from __future__ import annotations


def ladder_markdown(res: dict, cfg) -> str:
    lines = [f"# Ladder {cfg.name}", "", f"Corpus `{cfg.data.corpus}`, tokenizer `{cfg.data.tokenizer}`; held-out: "
             f"{res['held_out_tokens']:,} tokens ({res['held_out_top_chunks']} top chunks).", "",
             "## Per level (held-out)", "",
             "| level | vocabulary | codes per top chunk | tokens per top chunk | bits/token | reconstruction acc (own input) "
             "| end-to-end token acc (VQ decoders) | end-to-end token acc (upsamplers, greedy) | code usage |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["levels"]:
        lines.append(f"| {r['level']} | {r['vocab']} | {r['codes_per_chunk']} | {r['tokens_per_chunk']} | "
                     f"{r['bits_per_token']:.3f} | {r['recon_acc']:.3f} ({r['recon_input']}) | {r['e2e_acc_vq']:.3f} | "
                     f"{r['e2e_acc_upsample']:.3f} | {r['usage']:.3f} |")
    b = res["bits"]
    m = res.get("matched", {})
    lines += ["", "## Likelihood: hierarchical model vs a flat causal LM (held-out bits/token)", "",
              "| model | bits/token | non-embedding parameters | all parameters | training tokens |",
              "|---|---|---|---|---|",
              f"| hierarchical (prior + upsamplers; two-part code) | {b['hierarchical']:.3f} | "
              f"{m.get('hierarchical_body_params', 0):,} | {m.get('hierarchical_params', 0):,} (+ "
              f"{m.get('compressor_params', 0):,} in the compressors) | {m.get('up1_training_tokens', 0):,} (level-1 upsampler) |",
              f"| flat causal LM ({m.get('flat_layers', 0)} layers) | {b['flat']:.3f} | {m.get('flat_body_params', 0):,} | "
              f"{m.get('flat_params', 0):,} | {m.get('flat_training_tokens', 0):,} |",
              "", "Hierarchical components (bits/token): " + ", ".join(f"{k} {v:.3f}" for k, v in b["components"].items()),
              "", "## Samples", ""]
    for key, title in (("ladder_upsample", "ladder: prior -> upsamplers"), ("ladder_vq", "ladder: prior -> VQ decoders"),
                       ("flat", "flat LM")):
        lines.append(f"### {title}")
        for s in res["samples"][key]:
            text = s["text"].replace("```", "'''")
            lines += ["", "```", text[:1200], "```"]
        lines.append("")
    return "\n".join(lines) + "\n"
