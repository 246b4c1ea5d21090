"""Benchmarks (``make bench``); timings live here, never in the test suite's assertions."""
