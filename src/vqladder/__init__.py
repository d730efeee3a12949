"""vqladder: learn ladders of abstract vocabularies.

Discrete codes (FSQ / VQ-VAE / implicit neural codebooks) over chunks of token sequences, sentence embeddings and
pixel video, stacked level on level, with transformers that plan over the top level and decode down the ladder.

The public API is importable from here; names are loaded on first use, so ``import vqladder`` (and the
``vqladder`` command's ``--help``) stays fast::

    >>> import torch
    >>> from vqladder import CompressorConfig, SequenceCompressor
    >>> model = SequenceCompressor(CompressorConfig(vocab_size=256, in_len=64, out_len=8, d_model=32, n_heads=2))
    >>> model.encode(torch.randint(0, 256, (1, 64))).shape
    torch.Size([1, 8])

Quantisers: ``FSQ``, ``VectorQuantizer``, ``ResidualQuantizer``, ``QINCo``, ``PrefixRVQ``, ``QuantizerConfig``,
``Quantized``. Models: ``SequenceCompressor`` / ``CompressorConfig``, ``VariableCompressor`` /
``VariableConfig``, ``CausalLM`` / ``LMConfig``, ``CodePrior`` / ``PriorConfig``, ``Upsampler`` /
``UpsamplerConfig``, ``load_model``; sampling: ``sample``, ``greedy``, ``beam_search`` (and ``sample_many``,
``beam_search_many``: many problems per model call). Data: ``prepare``,
``TokenShards``, ``load_tokenizer``, ``WindowSampler``. Training: ``Trainer``, ``TrainerConfig``. The ladder:
``Ladder``. Recipes (each a config class and the function that runs it, as the command line does):
``RunConfig`` / ``train_run`` (a compressor), ``LadderConfig`` / ``train_ladder``, ``SweepConfig`` /
``run_sweep``, ``VariableExpConfig`` / ``run_variable``, ``PlanConfig`` / ``run_plan_experiment``,
``VideoExpConfig``, ``EmbedConfig`` / ``run_embed_eval``; ``load_config(cls, yaml, overrides)`` reads a preset.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .errors import VQLadderError  # noqa: F401,E402

_EXPORTS = {
    "vqladder.quantize": ("FSQ", "VectorQuantizer", "ResidualQuantizer", "QINCo", "QuantizerConfig", "Quantized",
                          "build_quantizer"),
    "vqladder.quantize.prefix_rvq": ("PrefixRVQ",),
    "vqladder.models": ("SequenceCompressor", "CompressorConfig", "VariableCompressor", "VariableConfig", "CausalLM",
                        "LMConfig", "CodePrior", "PriorConfig", "Upsampler", "UpsamplerConfig", "load_model"),
    "vqladder.models.sampling": ("sample", "greedy", "beam_search", "sample_many", "beam_search_many"),
    "vqladder.data": ("prepare", "TokenShards", "load_tokenizer", "make_tokenizer", "WindowSampler"),
    "vqladder.train": ("Trainer", "TrainerConfig"),
    "vqladder.config": ("load_config",),
    "vqladder.text.ladder": ("Ladder",),
    "vqladder.text.compressor": ("RunConfig", "train_run"),
    "vqladder.text.ladder_recipe": ("LadderConfig", "train_ladder"),
    "vqladder.text.sweep": ("SweepConfig", "run_sweep"),
    "vqladder.text.variable": ("VariableExpConfig", "run_variable"),
    "vqladder.planning.recipe": ("PlanConfig", "run_plan_experiment"),
    "vqladder.video.recipe": ("VideoExpConfig",),
    "vqladder.embed.recipe": ("EmbedConfig", "run_embed_eval"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["VQLadderError", "__version__", *_WHERE]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vqladder' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
