"""The ladder: levels of codes over codes, the top-level prior, upsamplers, search (sampling, beam)."""

from .ladder import Ladder, encode_stream  # noqa: F401
from .search import BeamResult, beam_search, filter_logits, sample  # noqa: F401
