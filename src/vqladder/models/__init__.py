"""Models built from ``nn`` blocks and ``quantize`` quantizers."""

from .compressor import CompressorConfig, SequenceCompressor  # noqa: F401
from .lm import CausalLM, LMConfig  # noqa: F401
from .multi_exit import MultiExitCompressor, MultiExitConfig  # noqa: F401
from .prior import CodePrior, PriorConfig  # noqa: F401
from .registry import MODEL_KINDS, build_model, load_model  # noqa: F401
from .upsampler import Upsampler, UpsamplerConfig  # noqa: F401
from .variable import VariableCompressor, VariableConfig  # noqa: F401
