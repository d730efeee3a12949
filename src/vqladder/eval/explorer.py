"""What a compressor run's report draws, computed once by evaluation and written into the run as
``explorer.json``: held-out chunks reconstructed token by token, and the code explorer (every code's held-out
usage, the text spans it stands for with counts, its nearest codes). The report only reads it."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import torch


def explorer_data(model, val: np.ndarray, tokenizer, max_chunks: int = 48) -> dict:
    """Encode and decode every held-out chunk of ``val`` with ``model`` (a sequence compressor); returns plain JSON:
    ``tokens`` (id -> string for every id shown), ``recon`` (the first ``max_chunks`` chunks: original, argmax
    decoding, first-stage codes), ``explorer`` and ``rate``. ``note`` instead when the split is shorter than one
    chunk."""
    n, m = model.config.in_len, model.config.out_len
    val = np.asarray(val)
    n_win = len(val) // n
    if n_win == 0:
        return {"note": "the val split is shorter than one chunk"}
    starts = np.arange(n_win, dtype=np.int64) * n      # every held-out chunk (the explorer counts them all)
    x = torch.from_numpy(np.stack([val[s:s + n] for s in starts]).astype(np.int64))
    show = min(max_chunks, len(x))
    codes, recon = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():  # every chunk is encoded (the explorer counts them all); only the shown ones decoded
        for i in range(0, len(x), 64):
            c = model.encode(x[i:i + 64])
            codes.append(c)
            if i < show:
                recon.append(model.decode(c[:show - i]).argmax(-1))
    model.train(was_training)
    codes, recon = torch.cat(codes), torch.cat(recon)
    depth = codes.shape[2] if codes.dim() == 3 else 1
    first = codes[..., 0] if codes.dim() == 3 else codes               # the explorer looks at the first stage
    strings = [tokenizer.decode([i]) for i in range(model.config.vocab_size)]
    used = sorted(set(x.reshape(-1).tolist()) | set(recon.reshape(-1).tolist()))
    out = {"tokens": {str(i): strings[i] for i in used}}
    out["recon"] = [{"chunk": int(starts[i] // n), "orig": x[i].tolist(), "pred": recon[i].tolist(),
                     "codes": first[i].tolist()} for i in range(show)]
    r = n // m
    spans: dict[int, Counter] = defaultdict(Counter)
    for i in range(len(x)):
        row = x[i].tolist()
        for j, c in enumerate(first[i].tolist()):
            spans[c]["".join(strings[t] for t in row[j * r:(j + 1) * r])] += 1
    ids = sorted(spans, key=lambda c: -sum(spans[c].values()))
    with torch.no_grad():
        vecs = model.quantizer.decode_codes(torch.tensor(ids)[None] if depth == 1 else
                                            torch.tensor(ids)[None, :, None].expand(1, -1, depth)).float()[0]
    near = []
    for s in range(0, len(ids), 1024):
        d = torch.cdist(vecs[s:s + 1024], vecs)
        d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = float("inf")
        near += d.topk(min(5, max(1, len(ids) - 1)), largest=False).indices.tolist()
    out["explorer"] = {
        "positions": len(x) * m, "chunks": len(x), "segment": r, "depth": depth,
        "codebook_size": int(model.quantizer.codebook_size),
        "codes": [{"id": int(c), "count": sum(spans[c].values()),
                   "spans": [[s, k] for s, k in spans[c].most_common(8)],
                   "near": [int(ids[k]) for k in nb if k < len(ids)]} for c, nb in zip(ids, near)],
    }
    out["rate"] = {"in_len": n, "out_len": m, "depth": depth, "bits_per_token": float(model.bits_per_token),
                   "codebook_size": int(model.quantizer.codebook_size)}
    return out
