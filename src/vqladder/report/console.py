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


def show_side_by_side(tok, rows: list[tuple[str, list]], n_chars: int = 240) -> None:
    """The same held-out chunks reconstructed at several rates: ``rows`` = [(label, examples)], each examples
    list as ``evaluate_compressor(return_examples=…)`` gives it (the originals must match)."""
    width = max(len(label) for label, _ in rows)
    for i, (orig, _, _) in enumerate(rows[0][1]):
        print(f"\n[{i}] {'original'.ljust(width)} : {tok.decode(orig)[:n_chars].replace(chr(10), '⏎')}")
        for label, ex in rows:
            o, pred, _ = ex[i]
            wrong = sum(a != b for a, b in zip(o, pred))
            text = mark_errors(tok, o, pred)[:n_chars].replace("\n", "⏎")
            print(f"[{i}] {label.ljust(width)} : {text}   ({wrong} of {len(o)} wrong)")
