"""Side-by-side timing scripts; ``python -m benchmarks.run_all`` writes BENCHMARKS.md."""
