"""Benchmarks that print ratios (``python -m bench.split_benchmark``)."""
