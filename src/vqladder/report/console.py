"""Console rendering shared by the CLI and the demo: result tables and reconstructions with wrong tokens marked."""

from __future__ import annotations


def print_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> None:
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    print(head)
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(format(r[c[0]], c[2]) for c in cols) + " |")


RESULT_COLUMNS = [("compression", "compression", "d"), ("codebook_size", "codebook", "d"),
                  ("bits_per_token", "bits/token", ".3f"), ("acc", "held-out token acc", ".3f"),
                  ("exact_match", "exact chunks", ".3f"), ("ce_bits", "recon CE (bits)", ".3f"),
                  ("usage", "code usage", ".3f"), ("perplexity", "code perplexity", ".1f")]


def mark_errors(tok, orig: list[int], pred: list[int], left: str = "⟦", right: str = "⟧") -> str:
    """The reconstruction as text with every run of wrong tokens wrapped in ``left`` … ``right``."""
    out, run = [], []
    for o, p in zip(orig, pred):
        if o == p:
            if run:
                out.append(left + tok.decode(run) + right)
                run = []
            out.append(tok.decode([p]))
        else:
            run.append(p)
    if run:
        out.append(left + tok.decode(run) + right)
    return "".join(out)


def show_examples(tok, examples, n_chars: int = 240) -> None:
    for i, (orig, pred, _codes) in enumerate(examples):
        o = tok.decode(orig)[:n_chars].replace("\n", "⏎")
        p = mark_errors(tok, orig, pred)[:n_chars].replace("\n", "⏎")
        wrong = sum(a != b for a, b in zip(orig, pred))
        print(f"\n[{i}] original     : {o}\n[{i}] reconstructed: {p}\n"
              f"[{i}] {wrong} of {len(orig)} tokens wrong, marked ⟦…⟧")
