"""``Ladder``: a trained stack of compressors with the top-level prior and one upsampler per level, loaded
from one directory.

Two kinds of stack (``mode``):
  * ``text``   every level is a compressor over the *tokens* at its own rate (Jukebox: each level its own
               VQ-VAE on the raw signal), judged by token reconstruction; level k's chunk of ``in_len`` tokens
               covers whole level-(k-1) chunks, so level-k codes sit above level-(k-1) codes of the same text;
  * ``codes``  level k+1 compresses the code stream of level k (the first design: each rung reproduces the
               code ids of the rung below);
  * ``multi_exit`` one ``MultiExitCompressor`` whose exits are the levels (exit k+1 pools exit k's continuous
               latents; every exit decoded to tokens, trained jointly); as ``text`` once loaded.
In both, upsampler k generates the level-(k-1) symbols under a level-k chunk from its codes (and, when trained
with ``prev_chunk``, the previous chunk's level-(k-1) symbols), so decoding down the ladder is the same.

Levels are numbered from the text up: level 0 = tokens, level k = the codes of the k-th compressor. A *top
chunk* is the span one top-level code block covers: ``chunk_len(0)`` tokens = ``chunk_len(L)`` top codes.
Streams are 1-D arrays of symbols; ``encode`` keeps whole top chunks only.

A level may be variable-rate (``models.variable.VariableCompressor``): its stream holds composite symbols
(code, segment length), a variable number per chunk. Levels below it keep their fixed geometry (a top chunk is
then the variable level's input chunk); levels at or above it have no fixed ``chunk_len``, and a fixed level
over a variable stream simply chunks that stream. Decoding a variable level repairs a stream whose lengths do
not add up to whole chunks (segments crossing a chunk end are cut, a last partial chunk is dropped).

Two ways down one rung (``method``):
  * ``vq``       the level's own deterministic decoder (argmax of its reconstruction logits);
  * ``upsample`` the level's upsampler, a transformer that samples the lower symbols given the codes
                 (cross-attention), with temperature / top-k / top-p (``temperature=0`` = greedy).

Directory layout (written by ``vqladder train-ladder``)::

    config.yaml  tokenizer/  results.json  results.md
    level1/ level2/ …      compressor run directories (checkpoints, metrics.jsonl, results.json)
    joint/                 the levels after joint fine-tuning (``joint_steps`` > 0; one ``joint_levels`` model), used instead when finished
    codes/level1.train.npy codes/level1.val.npy …   precomputed code streams
    (the saved config's ``mode`` says which kind of stack; a saved config without it is a ``codes`` ladder)
    up1/ up2/ …            upsamplers (level k codes -> level k-1 symbols)
    prior/                 top-level prior;   flat/   the flat causal LM baseline
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.tokenizers import load_tokenizer
from ..errors import CheckpointError, VQLadderError
from ..io import atomic_save_npy
from ..models.registry import load_model
from .geometry import LadderGeometry

LEVEL_DIR = "level{}"
UP_DIR = "up{}"
FLAT_RIVAL_DIR = "flat-rival{}"  # more flat LMs at the hierarchy's training FLOPs (flat_rivals)
SKIP_DIR = "skip{}"  # the skip-level token decoder from level k's codes
MULTI_EXIT_DIR = "multi_exit"


def is_variable(model) -> bool:
    return getattr(model, "kind", "") == "variable_compressor"


def symbol_vocab(model) -> int:
    """Symbols a level emits: codes, or composite (code, length) symbols for a variable-rate level."""
    return model.stream_vocab if is_variable(model) else model.quantizer.codebook_size


@torch.no_grad()
def encode_stream(model, stream: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Encode consecutive chunks of ``model.config.in_len`` symbols -> int64 code stream (tail dropped)."""
    if is_variable(model):
        return model.encode_stream(stream, batch_size)
    n, m = model.config.in_len, model.config.out_len
    n_chunks = len(stream) // n
    out = np.empty(n_chunks * m, dtype=np.int64)
    device = next(model.parameters()).device
    for s in range(0, n_chunks, batch_size):
        e = min(n_chunks, s + batch_size)
        x = torch.from_numpy(np.asarray(stream[s * n:e * n], dtype=np.int64)).view(e - s, n).to(device)
        out[s * m:e * m] = model.encode(x).reshape(-1).cpu().numpy()
    return out


class Ladder:
    """A trained ladder loaded from one directory (``Ladder.load(dir)``, as ``vqladder train-ladder`` writes it):
    ``encode(tokens, level)`` -> that level's codes, ``decode(codes, level)`` -> tokens down the levels' own
    decoders, ``bits_per_token(level)``, ``chunk_len(level)``, and generation from the prior through the
    upsamplers."""

    def __init__(self, levels: list, upsamplers: list | None = None, prior=None, tokenizer=None, flat=None,
                 directory: Path | None = None, mode: str = "text"):
        if not levels:
            raise VQLadderError("a ladder needs at least one level")
        self.geometry = LadderGeometry.from_models(mode, levels).validate()  # the one place the shape is decided
        self.mode = mode
        self.levels = list(levels)
        self.upsamplers = list(upsamplers) if upsamplers else [None] * len(levels)
        self.prior, self.tokenizer, self.flat, self.directory = prior, tokenizer, flat, directory

    # -- loading ----------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path, need_prior: bool = False, need_upsamplers: bool = False) -> "Ladder":
        """Load every trained part of a ladder directory; a missing level (or a required part) is a one-line
        ``VQLadderError``."""
        d = Path(directory)
        if not d.is_dir():
            raise VQLadderError(f"no such ladder directory: {d}")
        mode = _saved(d).get("mode", "codes")
        if mode == "multi_exit":
            me = _load_part(d / MULTI_EXIT_DIR, "multi_exit_compressor", "the multi-exit compressor")
            levels = [me.exit(k) for k in range(1, me.n_exits + 1)]
            return cls._load_rest(d, levels, mode, need_prior, need_upsamplers)
        n = 0
        while (d / LEVEL_DIR.format(n + 1)).exists():
            n += 1
        declared = _declared_levels(d)
        if n == 0 or (declared and n < declared):
            missing = n + 1
            raise VQLadderError(f"ladder directory {d} is missing level {missing} ({d / LEVEL_DIR.format(missing)}); "
                                f"train it with `vqladder train-ladder`")
        levels = []
        joint = any((d / "joint" / m).is_file() for m in ("results.json", "done.json"))  # jointly fine-tuned
        # levels (results.json; done.json in ladders written before the stage runner) replace the bottom-up ones
        if joint and not (d / "joint" / LEVEL_DIR.format(1)).is_dir():  # one JointLevels model (older: a dir per level)
            return cls._load_rest(d, list(_load_part(d / "joint", "joint_levels", "the joint levels").levels), mode,
                                  need_prior, need_upsamplers)
        for k in range(1, n + 1):
            src = d / "joint" / LEVEL_DIR.format(k) if joint else d / LEVEL_DIR.format(k)
            levels.append(_load_part(src, ("sequence_compressor", "variable_compressor"), f"level {k}"))
        return cls._load_rest(d, levels, mode, need_prior, need_upsamplers)

    @classmethod
    def _load_rest(cls, d: Path, levels: list, mode: str, need_prior: bool, need_upsamplers: bool) -> "Ladder":
        ups = []
        for k in range(1, len(levels) + 1):
            up_dir = d / UP_DIR.format(k)
            ups.append(_load_part(up_dir, "upsampler", f"upsampler {k}") if (up_dir / "results.json").is_file()
                       or need_upsamplers else None)
        prior = None
        if (d / "prior" / "results.json").is_file() or need_prior:
            prior = _load_part(d / "prior", "code_prior", "the prior")
        flat = _load_part(d / "flat", "causal_lm", "the flat LM") if (d / "flat" / "results.json").is_file() else None
        tok = load_tokenizer(d / "tokenizer") if (d / "tokenizer").is_dir() else None
        return cls(levels, ups, prior, tok, flat, d, mode=mode)

    # -- geometry (``LadderGeometry``) -------------------------------------------------------------------------
    @property
    def variable_level(self) -> int | None:
        """The lowest variable-rate level (1-based), above which symbols per chunk are not fixed."""
        return self.geometry.variable_level

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def vocab(self, level: int) -> int:
        """Symbols at ``level`` (level 0 = the token vocabulary)."""
        return self.geometry.vocab(level)

    def chunk_len(self, level: int) -> int:
        """Symbols of ``level`` per top chunk (below the lowest variable-rate level, if any)."""
        return self.geometry.chunk_len(level)

    def up_geometry(self, level: int) -> tuple[int, int]:
        """(parent_len, length) of upsampler ``level``: codes per level chunk and level-(k-1) symbols under it."""
        return self.geometry.up_geometry(level)

    def bits_per_token(self, level: int) -> float:
        """Rate of ``level``'s codes in bits per token (level 0: log2 of the token vocabulary)."""
        return self.geometry.bits_per_token(level)

    def _check_level(self, level: int) -> None:
        self.geometry.check_level(level)

    def _check_symbols(self, symbols: np.ndarray | torch.Tensor, level: int) -> None:
        s = torch.as_tensor(np.asarray(symbols) if not torch.is_tensor(symbols) else symbols)
        v = self.vocab(level)
        if s.numel() and (int(s.min()) < 0 or int(s.max()) >= v):
            raise VQLadderError(f"symbols out of range for level {level}: values in [{int(s.min())}, {int(s.max())}], "
                                f"level {level} has {v} symbols (codes of another level?)")
        if (self.variable_level is None or level < self.variable_level) and len(s) % self.chunk_len(level):
            raise VQLadderError(f"level {level} takes whole top chunks of {self.chunk_len(level)} symbols; got "
                                f"{len(s)} (codes of another level?)")

    # -- encode / decode --------------------------------------------------------------------------------------
    def tokens(self, text: str) -> np.ndarray:
        if self.tokenizer is None:
            raise VQLadderError("this ladder has no tokenizer (give token ids instead of text)")
        return np.asarray(self.tokenizer.encode(text), dtype=np.int64)

    def text(self, tokens) -> str:
        if self.tokenizer is None:
            raise VQLadderError("this ladder has no tokenizer")
        return self.tokenizer.decode([int(t) for t in tokens])

    def encode(self, x, level: int | None = None, batch_size: int = 64) -> np.ndarray:
        """Text or a 1-D token array -> the code stream of ``level`` (default: the top). Whole top chunks
        only: a tail shorter than ``chunk_len(0)`` tokens is dropped."""
        level = self.n_levels if level is None else level
        self._check_level(level)
        stream = self.tokens(x) if isinstance(x, str) else np.asarray(x, dtype=np.int64)
        n = len(stream) // self.chunk_len(0) * self.chunk_len(0)
        if n == 0:
            raise VQLadderError(f"need at least one top chunk of {self.chunk_len(0)} tokens, got {len(stream)}")
        stream = stream[:n]
        self._check_symbols(stream, 0)
        if self.mode != "codes":
            return stream if level == 0 else encode_stream(self.levels[level - 1], stream, batch_size)
        for k in range(level):
            stream = encode_stream(self.levels[k], stream, batch_size)
        return stream

    @torch.no_grad()
    def decode_one(self, codes, level: int, method: str = "vq", temperature: float = 1.0, top_k: int = 0,
                   top_p: float = 1.0, generator: torch.Generator | None = None, batch_size: int = 64,
                   streams: int = 1, first_prev=None) -> np.ndarray:
        """Level-``level`` code stream -> level-``level - 1`` symbol stream, one rung down.

        An upsampler trained with the previous chunk as context decodes chunk after chunk, each seeing the one
        it decoded before: ``streams`` > 1 cuts the stream into that many equal independent parts decoded side
        by side (a batch); ``first_prev`` (level-(k-1) symbols, one chunk per stream) is the context of each
        part's first chunk (default: none). ``temperature=0`` is greedy."""
        if level < 1:
            raise VQLadderError("level 0 (tokens) is the bottom: nothing to decode")
        self._check_level(level)
        codes = np.asarray(codes, dtype=np.int64)
        self._check_symbols(codes, level)
        lv = self.levels[level - 1]
        if is_variable(lv):
            if method != "vq":
                raise VQLadderError(f"level {level} is variable-rate: decode it with method=vq")
            return lv.decode_stream(codes, batch_size, strict=False)
        m = lv.config.out_len
        chunks = torch.from_numpy(codes).view(-1, m)
        out = []
        if method == "vq":
            x = self._vq(chunks, lv, batch_size)
            if self.mode != "codes" and level > 1:  # a text level decodes to tokens: re-encode one rung down
                x = encode_stream(self.levels[level - 2], x, batch_size)
            return x
        if method != "upsample":
            raise VQLadderError(f"decode method must be vq or upsample, got {method!r}")
        up = self.upsamplers[level - 1]
        if up is None:
            raise VQLadderError(f"this ladder has no upsampler for level {level} (decode with method=vq)")
        dev = up.head.weight.device

        def run(parent, prev=None):
            if temperature == 0:
                return greedy_upsample(up, parent, prev)
            return up.generate(parent, temperature, top_k, top_p, generator, prev=prev)

        if not up.config.prev_chunk:
            for s in range(0, len(chunks), batch_size):
                out.append(run(chunks[s:s + batch_size].to(dev)).cpu())
            return torch.cat(out).reshape(-1).numpy()
        if streams < 1 or len(chunks) % streams:
            raise VQLadderError(f"{len(chunks)} chunks do not split into {streams} equal streams")
        par = chunks.view(streams, -1, m).to(dev)
        prev = None if first_prev is None else torch.as_tensor(np.asarray(first_prev, dtype=np.int64)).view(
            streams, -1).to(dev)
        for i in range(par.shape[1]):
            prev = run(par[:, i], prev)
            out.append(prev.cpu())
        return torch.stack(out, 1).reshape(-1).numpy()

    @staticmethod
    def _vq(chunks: torch.Tensor, lv, batch_size: int) -> np.ndarray:
        """A level's own deterministic decoder (argmax) over code chunks[n, m] -> the flat stream it decodes to."""
        dev = lv.head.weight.device
        return torch.cat([lv.decode(chunks[s:s + batch_size].to(dev)).argmax(-1).cpu()
                          for s in range(0, len(chunks), batch_size)]).reshape(-1).numpy()

    def decode(self, codes, level: int, to_level: int = 0, method: str = "vq", **kw) -> np.ndarray:
        """Decode a level-``level`` stream down to ``to_level`` (default tokens), rung by rung (a text ladder's
        VQ decoders go to tokens in one step)."""
        self._check_level(to_level)
        if to_level > level:
            raise VQLadderError(f"cannot decode level {level} up to level {to_level}")
        if self.mode != "codes" and method == "vq" and level > to_level:
            codes = np.asarray(codes, dtype=np.int64)
            self._check_symbols(codes, level)
            lv, bs = self.levels[level - 1], kw.get("batch_size", 64)
            x = self._vq(torch.from_numpy(codes).view(-1, lv.config.out_len), lv, bs)
            return x if to_level == 0 else encode_stream(self.levels[to_level - 1], x, bs)
        x = codes
        for k in range(level, to_level, -1):
            x = self.decode_one(x, k, method, **kw)
        return np.asarray(x)

    # -- generation -------------------------------------------------------------------------------------------
    def pad_token(self) -> int:
        """Token used to left-pad a prompt to whole top chunks (a newline when it is a single token)."""
        if self.tokenizer is not None:
            ids = self.tokenizer.encode("\n")
            if len(ids) == 1:
                return int(ids[0])
        return 0

    @torch.no_grad()
    def generate(self, prompt: str | None = None, chunks: int = 1, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, beam: int = 0, method: str = "upsample", seed: int = 0) -> dict:
        """Plan ``chunks`` top chunks with the prior (sampling, or beam search of width ``beam``), then decode
        them down the ladder. A prompt is tokenised, left-padded to whole top chunks and encoded: its top codes
        are the prior's prefix. Returns the codes at every level and the text."""
        from ..models.sampling import beam_search, sample

        if self.prior is None:
            raise VQLadderError("this ladder has no trained prior (run `vqladder train-ladder` to the end)")
        if chunks < 1:
            raise VQLadderError(f"--chunks must be >= 1, got {chunks}")
        g = torch.Generator().manual_seed(seed)
        m_top = self.chunk_len(self.n_levels)
        prefix = np.zeros(0, dtype=np.int64)
        prompt_tokens = np.zeros(0, dtype=np.int64)
        if prompt:
            prompt_tokens = self.tokens(prompt)
            c0 = self.chunk_len(0)
            pad = (-len(prompt_tokens)) % c0
            padded = np.concatenate([np.full(pad, self.pad_token(), dtype=np.int64), prompt_tokens])
            prefix = self.encode(padded)
        ctx = self.prior.config.context
        if len(prefix) + chunks * m_top > ctx:
            raise VQLadderError(
                f"prompt ({len(prefix) // m_top} top chunks) + {chunks} generated chunks need "
                f"{len(prefix) + chunks * m_top} top codes, more than the prior's context of {ctx} "
                f"({ctx // m_top} chunks): give a shorter prompt or fewer --chunks")
        pre = torch.from_numpy(prefix)
        length = chunks * m_top
        if beam > 0:
            res = beam_search(self.prior.step_fn(), length, beam, prefix=pre)
            top = res.sequence.numpy()
        else:
            top = sample(self.prior.step_fn(), 1, length, temperature, top_k, top_p, prefix=pre[None],
                         generator=g)[0].numpy()
        levels = {self.n_levels: top}
        x = top
        if self.mode != "codes" and method == "vq":  # the top level's decoder gives the tokens at once; the levels
            x = self.decode(top, self.n_levels, 0, method="vq")  # between are those tokens' codes
            levels.update({k: self.encode(x, k) for k in range(1, self.n_levels)})
            levels[0] = x
        for k in range(self.n_levels, 0, -1) if 0 not in levels else ():
            first_prev = None
            if prompt and method == "upsample" and self.upsamplers[k - 1] is not None:  # the prompt's last chunk
                below = padded if k == 1 else self.encode(padded, k - 1)
                first_prev = below[-self.up_geometry(k)[1]:]
            x = self.decode_one(x, k, method, temperature=temperature, top_k=top_k, top_p=top_p, generator=g,
                                first_prev=first_prev)
            levels[k - 1] = x
        out = {"levels": levels, "prompt_codes": prefix}
        if self.tokenizer is not None:
            out["text"] = self.text(levels[0])
            out["prompt"] = prompt or ""
        return out


def save_codes(path: Path, codes: np.ndarray) -> None:
    atomic_save_npy(path, codes.astype(np.uint16 if codes.max(initial=0) < 65535 else np.uint32))


def load_codes(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def level_codes(d: Path, k: int, model, tr: np.ndarray, va: np.ndarray, log) -> tuple:
    """Level k's train and val code streams, ``codes/level{k}.{train,val}.npy`` (encoded when missing)."""
    ctr, cva = d / "codes" / f"level{k}.train.npy", d / "codes" / f"level{k}.val.npy"
    if not (ctr.is_file() and cva.is_file()):
        log(f"level {k}: encoding the train and val streams")
        save_codes(ctr, encode_stream(model, tr))
        save_codes(cva, encode_stream(model, va))
    return load_codes(ctr), load_codes(cva)


@torch.no_grad()
def greedy_upsample(up, parent: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
    """Argmax decoding of an upsampler (KV-cached; the parent encoding is computed once)."""
    from ..models.sampling import greedy

    return greedy(up.step_fn(parent, prev), parent.shape[0], up.config.length, device=parent.device)


def _saved(d: Path) -> dict:
    """The config the ladder directory was made with (``config.yaml``, or ``ladder.yaml`` of an older version)."""
    from ..train.recipe import read_saved_config

    return read_saved_config(d)


def _declared_levels(d: Path) -> int:
    return len(_saved(d).get("levels") or [])


def _load_part(path: Path, kind: str | tuple, what: str):
    if not path.exists():
        raise VQLadderError(f"ladder part missing: {what} ({path}); train it with `vqladder train-ladder`")
    kinds = (kind,) if isinstance(kind, str) else kind
    try:
        model, meta, _ = load_model(path, expect_kind=kinds[0] if len(kinds) == 1 else None)
    except CheckpointError as e:
        raise VQLadderError(f"cannot load {what} from {path}: {e}")
    if meta.get("kind") not in kinds:
        raise VQLadderError(f"cannot load {what} from {path}: it holds a {meta.get('kind')!r} model")
    return model
