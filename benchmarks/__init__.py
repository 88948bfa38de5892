"""Benchmarks: measured against a floor taken in the same run. Not tests: no thresholds asserted."""
