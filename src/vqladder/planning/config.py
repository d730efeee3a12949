"""The planning experiment's configuration: the maze and its data, the contenders (``CONTENDERS``), the searches and
scorers (``SCORERS``), each stage's model and training budget. ``PlanConfig.validate`` checks every choice once.

The contenders, trained on the same imperfect, return-labelled demonstrations:

* **flat**: a Decision-Transformer-style causal transformer over moves, conditioned on the prefix
  (doors, start, goal, return bucket) -- a ``CodePrior`` whose codes are the moves;
* **ladder**: a level-1 compressor over the move sequence (each code covers ``ladder.chunk`` moves; learned),
  a top prior over those codes with the same conditioning prefix, and the compressor's decoder;
* **subgoal**: the same codes and top prior, each code expanded to moves by a low-level model that sees the
  layout, the goal and the cell the plan has reached (``planning.planners.SubgoalPlanner``);
* **rooms**: one learned code per room-to-room segment (``planning.planners.room_segments``), a top prior over
  them and a segment decoder as the subgoal contender's;
* **doors**: the rooms contender with codes given by the rule (``door_codes``: the door each room is left by):
  the reference for a vocabulary that means "go through that door";
* **endstate**: the rooms contender with codes learned to name *where a segment leads*: a quantised encoder of
  the cell its room's walk ends in, relative to its start and in the task's context (``planning.endstate``),
  optionally with a rate term that makes the codes predictable from the task; its segment decoder is a
  goal-reaching policy toward that cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..config import NonNegFloat, NonNegInt, PathStr, PosFloat, PosInt, RunName
from ..errors import VQLadderError
from ..models import CompressorConfig, PriorConfig
from ..models.variable import VariableConfig
from ..quantize import QuantizerConfig
from ..train import TrainerConfig
from .endstate import EndStateConfig
from .maze import MazeConfig
from .value import ValueConfig


@dataclass
class PlanDataConfig:
    train_layouts: PosInt = 2000         # layouts for training demonstrations
    episodes_per_layout: PosInt = 8      # demonstrations per training layout
    test_layouts: PosInt = 50            # held-out layouts (one task each), never seen in training
    val_layouts: NonNegInt = 0           # validation layouts (one task each), in neither split: the search method and
                                         # scorer of each contender are chosen on them (0: no validation split)
    seed: NonNegInt = 0                     # data seed


def _tc(**kw):
    base = dict(steps=1200, batch_size=64, lr=2e-3, warmup=60, eval_every=-1, ckpt_every=300, log_every=50)
    base.update(kw)
    return lambda: TrainerConfig(**base)


@dataclass
class FlatSpec:
    model: PriorConfig = field(default_factory=lambda: PriorConfig(d_model=128, n_heads=2, n_layers=4))
    # Muon: the flat planner reaches AdamW's held-out loss in 0.47x its time (docs/bench/speedrun-planner.md; 0.37x
    # on one core with native bf16, docs/bench/speedrun-bf16.md)
    train: TrainerConfig = field(default_factory=_tc(optimizer="muon"))


@dataclass
class LadderSpec:
    chunk: PosInt = 4                    # moves per level-1 code
    compressor: CompressorConfig = field(default_factory=lambda: CompressorConfig(
        d_model=64, n_heads=2, downsample="pool", enc_layers=1, latent_layers=1, dec_layers=1,
        quantizer=QuantizerConfig(kind="fsq", codebook_size=1024)))
    compressor_train: TrainerConfig = field(default_factory=_tc(steps=3000, lr=3e-3))  # 800 steps: 9% exact plans
    prior: PriorConfig = field(default_factory=lambda: PriorConfig(d_model=128, n_heads=2, n_layers=4))
    prior_train: TrainerConfig = field(default_factory=_tc())


@dataclass
class SubgoalSpec:
    model: PriorConfig = field(default_factory=lambda: PriorConfig(d_model=96, n_heads=2, n_layers=3))
    train: TrainerConfig = field(default_factory=_tc(steps=1200))


@dataclass
class DoorsSpec:
    """The doors contender's segment decoder learns from the segments of demonstrations in these return buckets
    (0 failed .. 3 optimal). A door code does not name the moves, so the decoder imitates a policy ("go through
    that door"), and detours and failed walks teach it to wander; the default keeps the optimal ones."""
    decoder_buckets: list[NonNegInt] = field(default_factory=lambda: [3])


@dataclass
class EndStateSpec:
    """The endstate contender: its coder (model and training; ``levels`` sets its vocabulary, ``rate_weight`` its
    rate term) and the return buckets its segment decoder learns from (as ``doors.decoder_buckets``: the same
    default, so the two differ only in where their codes come from)."""
    model: EndStateConfig = field(default_factory=EndStateConfig)
    train: TrainerConfig = field(default_factory=_tc(steps=1500, lr=3e-3))
    decoder_buckets: list[NonNegInt] = field(default_factory=lambda: [3])


CONTENDERS = ("flat", "ladder", "subgoal", "rooms", "doors", "endstate")
SEGMENT_KINDS = ("rooms", "doors", "endstate")  # the contenders whose codes stand for room-to-room segments


@dataclass
class ValueSpec:
    model: ValueConfig = field(default_factory=ValueConfig)
    train: TrainerConfig = field(default_factory=_tc(steps=800))
    rollouts: NonNegInt = 0   # search roll-outs per training demonstration's task added to the value's training rows:
                              # plans sampled from the trained flat planner, labelled by the maze (0: demonstrations only)
    relabel: bool = False     # a roll-out that fails is relabelled a success at reaching where it got to (hindsight)


SCORERS = ("likelihood", "verifier", "value", "value+verifier")


@dataclass
class SegmentSpec:
    """Variable-length codes of moves (``models.variable``), trained on the first seed's demonstrations at
    ``ladder.chunk`` moves per code, to measure whether content-chosen boundaries fall on room crossings."""
    methods: list[str] = field(default_factory=list)  # learned | entropy (empty: none trained)
    model: VariableConfig = field(default_factory=lambda: VariableConfig(
        d_model=64, n_heads=2, enc_layers=1, latent_layers=1, dec_layers=1,
        quantizer=QuantizerConfig(kind="fsq", codebook_size=1024)))
    train: TrainerConfig = field(default_factory=_tc(steps=1500, lr=3e-3))
    entropy_lm_train: TrainerConfig = field(default_factory=_tc(steps=600))  # its next-move LM (entropy)


@dataclass
class SearchConfig:
    budgets: list[int] = field(default_factory=lambda: [1, 4, 16])  # x max_moves model evaluations
    methods: list[str] = field(default_factory=lambda: ["beam", "sample"])
    scorers: list[str] = field(default_factory=lambda: ["likelihood", "verifier"])
    verifier_weight: NonNegFloat = 1.0      # weight of the validator score beside the log-probability
    value_weight: NonNegFloat = 1.0         # weight of the learned value's moves to go (nats per move) in its scorers
    dense_verifier: bool = False      # add the BFS distance-to-go to the verifier (an oracle heuristic)
    temperature: PosFloat = 1.0          # sampling temperature for best-of-N
    max_tasks: NonNegInt = 0                # evaluate the first N held-out tasks only (0 = all)
    validation: bool = True                 # search the validation tasks too (where choices are made); false: a
                                            # preset whose choices were made elsewhere saves that search time
    examples: NonNegInt = 6                 # held-out tasks recorded move by move in episodes.json (the report)
    batch_tasks: PosInt = 32                # tasks beam-searched at once (one model call per step for all; each
                                            # task searched and charged as alone): speed and memory, not results


@dataclass
class PlanConfig:
    EXPERIMENT: ClassVar[str] = "planning"  # the `experiment:` key its saved config carries
    name: RunName = "plan-small"
    out_dir: PathStr = "runs"
    maze: MazeConfig = field(default_factory=lambda: MazeConfig(max_moves=40))
    data: PlanDataConfig = field(default_factory=PlanDataConfig)
    seeds: list[NonNegInt] = field(default_factory=lambda: [0, 1, 2])
    flat: FlatSpec = field(default_factory=FlatSpec)
    ladder: LadderSpec = field(default_factory=LadderSpec)
    contenders: list[str] = field(default_factory=lambda: ["flat", "ladder", "subgoal"])
    subgoal: SubgoalSpec = field(default_factory=SubgoalSpec)  # the subgoal contender's low-level decoder
    doors: DoorsSpec = field(default_factory=DoorsSpec)
    endstate: EndStateSpec = field(default_factory=EndStateSpec)
    value: ValueSpec = field(default_factory=ValueSpec)   # the learned value (trained when a value scorer is searched)
    segments: SegmentSpec = field(default_factory=SegmentSpec)  # variable-length codes of moves (boundary alignment)
    search: SearchConfig = field(default_factory=SearchConfig)
    threads: NonNegInt = 0                  # torch threads (0 = default)
    closed_loop: bool = False  # the doors and endstate contenders' top prior re-reads the cell the plan has reached
                               # before each code (a high-level policy; planners.SubgoalPlanner); rooms stays open-loop
    # the closed-loop prior: the open-loop prior fine-tuned on what is left to do from every segment's start cell
    closed_loop_train: TrainerConfig = field(default_factory=_tc(steps=1200, lr=1e-3))
    match_flops: bool = False  # the flat planner's steps set so its training FLOPs (counted) equal the largest
                               # contender's (all the stages its plans come from); else flat.train.steps as given

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def validate(self) -> None:
        self.maze.validate()
        if self.maze.max_moves % self.ladder.chunk:
            raise VQLadderError(f"maze.max_moves={self.maze.max_moves} must be a multiple of ladder.chunk={self.ladder.chunk}")
        if not self.seeds:
            raise VQLadderError("seeds is empty")
        for b in self.search.budgets:
            if b <= 0:
                raise VQLadderError(f"search budget multiples must be > 0, got {b}")
        for m in self.search.methods:
            if m not in ("beam", "sample"):
                raise VQLadderError(f"search method must be beam or sample, got {m!r}")
        for c in self.contenders:
            if c not in CONTENDERS:
                raise VQLadderError(f"contender must be one of {', '.join(CONTENDERS)}, got {c!r}")
        if not self.contenders:
            raise VQLadderError("contenders is empty")
        for s in self.search.scorers:
            if s not in SCORERS:
                raise VQLadderError(f"scorer must be one of {', '.join(SCORERS)}, got {s!r}")
        for m in self.segments.methods:
            if m not in ("learned", "entropy"):
                raise VQLadderError(f"segments.methods must be learned or entropy, got {m!r}")
        for kind in ("doors", "endstate"):
            b = self.decoder_buckets(kind)
            if not b or any(v > 3 for v in b):
                raise VQLadderError(f"{kind}.decoder_buckets must name return buckets 0..3, got {b}")

    def closed(self, kind: str) -> bool:
        """Is this contender's top prior closed-loop (``closed_loop``; the doors and endstate contenders only)?"""
        return self.closed_loop and kind in ("doors", "endstate")

    def decoder_buckets(self, kind: str) -> list[int]:
        """The return buckets a segment contender's decoder learns from (rooms: all four)."""
        return {"doors": self.doors.decoder_buckets, "endstate": self.endstate.decoder_buckets}.get(kind, [0, 1, 2, 3])
