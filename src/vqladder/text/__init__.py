"""Text: the compressor run, the ladder (levels, upsamplers, prior, joint fine-tuning), the compression sweep
with its references, variable-length codes; their recipes, evaluation and report views."""
