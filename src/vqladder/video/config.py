"""The video experiment's configuration (``vqladder video train|eval CONFIG``): the clips, the frame autoencoder
(level 1), the tubelet compressor (level 2), the predictor shared by the latent and pixel contenders, the rollout
and the probes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..config import NonNegFloat, NonNegInt, PathStr, PosInt, RunName, derive
from ..errors import VQLadderError
from ..models import CompressorConfig
from ..quantize import QuantizerConfig
from ..train import TrainerConfig
from .data import VideoDataConfig
from .models import FrameAEConfig, PredictorConfig


def _tc(**kw):
    base = dict(steps=500, batch_size=8, lr=2e-3, warmup=50, eval_every=-1, ckpt_every=250, log_every=50,
                progress=False)
    base.update(kw)
    return lambda: TrainerConfig(**base)


@dataclass
class Level2Config:
    tubelet: PosInt = 4                  # frames per tubelet: one level-2 code per patch per `tubelet` frames
    model: CompressorConfig = field(default_factory=lambda: CompressorConfig(
        d_model=64, n_heads=2, downsample="pool", enc_layers=1, latent_layers=1, dec_layers=1,
        quantizer=QuantizerConfig(kind="fsq", codebook_size=1024)))


@dataclass
class VideoExpConfig:
    EXPERIMENT: ClassVar[str] = "video"  # the `experiment:` key its saved config carries
    name: RunName = "video-balls"
    out_dir: PathStr = "runs"
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    seeds: list[NonNegInt] = field(default_factory=lambda: [0, 1, 2])
    ae: FrameAEConfig = field(default_factory=FrameAEConfig)
    ae_train: TrainerConfig = field(default_factory=_tc())
    level2: Level2Config = field(default_factory=Level2Config)
    level2_train: TrainerConfig = field(default_factory=_tc(batch_size=64))
    predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(d_model=128, n_heads=2, n_layers=3))
    predictor_train: TrainerConfig = field(default_factory=_tc())
    context: PosInt = 4                  # true frames given to a rollout
    horizon: PosInt = 8                  # frames predicted (context + horizon <= data.frames)
    eval_clips: PosInt = 100             # held-out clips for prediction and probe testing
    probe_clips: PosInt = 400            # training clips used to fit the probes
    probe_l2: NonNegFloat = 0.0             # ridge penalty of the probes (standardised features); 0 = chosen on held-back rows
    threads: NonNegInt = 0                  # torch threads (0 = default)

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def validate(self) -> None:
        self.data.validate()
        ae = self.ae_config(0)
        ae.validate()
        if self.context < 1 or self.horizon < 1:
            raise VQLadderError(f"context and horizon must be >= 1 frame, got {self.context}, {self.horizon}")
        if self.context + self.horizon > self.data.frames:
            raise VQLadderError(f"horizon {self.horizon} + context {self.context} frames is longer than the clip "
                                f"({self.data.frames} frames)")
        t = self.level2.tubelet
        if t < 1 or self.data.frames % t:
            raise VQLadderError(f"level2.tubelet={t} must divide the clip length {self.data.frames}")
        if not self.seeds:
            raise VQLadderError("seeds is empty")

    def ae_config(self, seed: int) -> FrameAEConfig:
        return derive(self.ae, channels=self.data.channels, size=self.data.size, seed=seed)
