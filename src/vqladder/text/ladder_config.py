"""The ladder's configuration (``vqladder train-ladder CONFIG``): its levels, upsamplers, top prior, the flat LM it
is compared with (matched in parameters and counted training FLOPs), the judge and the evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..config import Annotated, Check, NonNegInt, OptPosInt, PathStr, PosFloat, PosInt, RunName
from ..data import DataConfig
from ..errors import VQLadderError
from ..models import CompressorConfig, LMConfig, MultiExitConfig, PriorConfig, UpsamplerConfig
from ..train import TrainerConfig
from .geometry import MODES, LadderGeometry
from .ladder import SKIP_DIR, UP_DIR


def _default_levels():
    return [
        LevelSpec(CompressorConfig(in_len=128, out_len=32, d_model=128, n_heads=2, downsample="pool", enc_layers=2,
                                   dec_layers=2),
                  TrainerConfig(steps=400, batch_size=32, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100)),
        LevelSpec(CompressorConfig(in_len=128, out_len=8, d_model=128, n_heads=2, downsample="pool", enc_layers=2,
                                   dec_layers=2),
                  TrainerConfig(steps=400, batch_size=32, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100)),
    ]


@dataclass
class LevelSpec:
    model: CompressorConfig = field(default_factory=CompressorConfig)   # vocab_size 0 = from the level below
    train: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class LadderEvalConfig:
    max_chunks: OptPosInt = 256             # held-out top chunks for the tables (-1 = the whole val split)
    batch_size: PosInt = 32              # chunks per eval batch
    samples: NonNegInt = 2                  # generated samples per model in results.md
    sample_chunks: PosInt = 2            # top chunks per generated sample
    temperature: PosFloat = 1.0          # sampling temperature for the samples
    top_k: NonNegInt = 0                    # top-k for the samples (0 = off)
    top_p: Annotated[float, Check(gt=0, max=1)] = 0.95               # nucleus for the samples
    threads: OptPosInt = -1                 # torch CPU threads for the evaluation (generation is timed); -1 = leave


@dataclass
class LadderConfig:
    EXPERIMENT: ClassVar[str] = "ladder"  # the `experiment:` key its saved config carries
    name: RunName = "ladder"              # ladder directory name under out_dir
    out_dir: PathStr = "runs"             # where ladders live
    data: DataConfig = field(default_factory=DataConfig)
    mode: str = "text"                  # text: every level compresses the tokens; codes: level k+1 the codes of k;
    #                                     multi_exit: one compressor whose exits are the levels (multi_exit below)
    levels: list[LevelSpec] = field(default_factory=_default_levels)
    multi_exit: MultiExitConfig = field(default_factory=MultiExitConfig)  # mode: multi_exit (levels unused)
    multi_exit_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=1200, batch_size=8, lr=2e-3, warmup=80, eval_every=-1, ckpt_every=100))
    joint_steps: NonNegInt = 0              # > 0: joint fine-tuning of all levels on live codes (see module doc)
    upsampler: UpsamplerConfig = field(default_factory=lambda: UpsamplerConfig(prev_chunk=True, code_dropout=0.1))  # every level's
    # AdamW: Muon ends lower at 600 steps (docs/bench/speedrun-ladder.md) but higher at the ladder's own budgets
    # (docs/results/ladder.md, last section)
    upsampler_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=400, batch_size=32, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100))
    # step budgets of upsamplers 1, 2, … (a listed one trains for that many steps, not upsampler_train's budget;
    # the rest keep it): to give a ladder's upsamplers the steps another ladder's got in its time budget
    upsampler_steps: list[PosInt] = field(default_factory=list)
    prior: PriorConfig = field(default_factory=PriorConfig)
    prior_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=400, batch_size=32, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100))
    flat: LMConfig = field(default_factory=lambda: LMConfig(context=0, d_model=128, n_heads=2, n_layers=4))
    flat_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=400, batch_size=16, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100))
    flat_match_flops: bool = True     # set flat_train.steps so its training FLOPs (counted) match the hierarchy's
    flat_match_tokens: bool = True    # (without flat_match_flops) ... so it sees as many tokens as upsampler 1
    flat_match_params: bool = True    # set flat.n_layers so its parameters (all) are closest to prior + upsamplers
    # more flat LMs beside the matched one, their sizes as given (not matched in parameters), each trained for the
    # hierarchy's counted FLOPs and scored on the same held-out windows: is the flat rival starved by its size?
    flat_rivals: list[LMConfig] = field(default_factory=list)
    use_judge: bool = False           # train a judge LM that scores the samples of every path (generation table)
    judge: LMConfig = field(default_factory=lambda: LMConfig(context=0, d_model=128, n_heads=2, n_layers=4, seed=7))
    judge_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=400, batch_size=8, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100))
    eval: LadderEvalConfig = field(default_factory=LadderEvalConfig)
    # >= 2: skip-level likelihood, a token decoder (the upsampler's design) conditioned on level-k codes directly,
    # trained for as many steps as upsampler 1; the text's bits/token without the levels below k transmitted
    # (prior + upsamplers above k + this decoder) are measured beside the two-part code. 0 = off
    skip_level: NonNegInt = 0
    # stages (up1, up2, …, prior, skipk) that keep their best weights on a validation split: the last
    # select_holdout of the train text's chunks is held back from their training and scored every select_every
    # steps (bits per symbol); the run trains its whole budget and ends with the best-scored step's weights. The
    # upper stages see few chunks (the top prior: 4 codes per 256 tokens) and memorise them otherwise
    select: list[str] = field(default_factory=list)
    select_every: PosInt = 100
    select_holdout: Annotated[float, Check(gt=0, lt=1)] = 0.1
    seed: NonNegInt = 0               # added to every stage's model and data seeds (not the judge's): one ladder per seed

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def geometry(self, vocab: int = 0) -> LadderGeometry:
        """The ladder's shape from its level configs (``vocab``: the token vocabulary, 0 before the data is read)."""
        return LadderGeometry.from_configs(self.mode, [lv.model for lv in self.levels], vocab)

    def validate(self) -> None:
        if not self.levels:
            raise VQLadderError("a ladder needs at least one level (levels: [...])")
        if self.mode not in MODES:
            raise VQLadderError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "multi_exit":
            self.multi_exit.validate()
        for k, lv in enumerate(self.levels, 1):
            if lv.model.quantizer.depth != 1:
                raise VQLadderError(f"level {k}: ladder levels need quantizer.depth=1 (codes are the next level's symbols)")
        if self.mode != "multi_exit":  # the multi-exit compressor's exits are checked when it is built
            self.geometry().validate()
        top = self.levels[-1].model.out_len
        if self.prior.context % top:
            raise VQLadderError(f"prior.context={self.prior.context} must be a multiple of the top level's "
                                f"out_len={top} (whole top chunks)")
        if self.skip_level and not 2 <= self.skip_level <= len(self.levels):
            raise VQLadderError(f"skip_level={self.skip_level} must name a level from 2 to {len(self.levels)} (the "
                                f"token decoder reads that level's codes, skipping the ones below; 0 = off)")
        known = [UP_DIR.format(k) for k in range(1, len(self.levels) + 1)] + ["prior"] + (
            [SKIP_DIR.format(self.skip_level)] if self.skip_level else [])
        unknown = [x for x in self.select if x not in known]
        if unknown:
            raise VQLadderError(f"select names {unknown[0]!r}, not a stage of this ladder that can keep its best "
                                f"weights; choose from {', '.join(known)}")
        if len(self.upsampler_steps) > len(self.levels):
            raise VQLadderError(f"upsampler_steps lists {len(self.upsampler_steps)} step budgets for a ladder of "
                                f"{len(self.levels)} upsamplers")
        if self.prior.cond_len:
            raise VQLadderError("the text ladder's prior is conditioned by its prefix (a prompt's codes); "
                                "leave prior.cond_len at 0")
