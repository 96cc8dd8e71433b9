"""Benchmarks of Contact Guard: ``python -m bench`` prints a table and writes results.json."""
