"""Experiments: the seed experiments as functions over the parts (data, models, train, eval)."""
