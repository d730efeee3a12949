"""Sampling and beam search live in ``models/sampling.py`` (the upsampler and prior use them too); this module keeps
the old import path working."""

from ..models.sampling import BeamResult, Scorer, StepFn, beam_search, filter_logits, sample  # noqa: F401
