"""Benchmarks of the project, one job per module; ``benchmarks/benchmark.py`` runs them all."""
