"""Measuring harnesses behind the benchmark and experiment tools (side by side, in one process)."""
