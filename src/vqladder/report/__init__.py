"""Reports read run directories after the fact (never imported by training code)."""
