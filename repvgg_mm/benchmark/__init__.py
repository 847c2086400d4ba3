"""Measuring harnesses: side-by-side benchmarks and experiments (the top layer)."""
