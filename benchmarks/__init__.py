"""trainlab's benchmark suite (never part of the tests): ``python -m benchmarks``; see benchmarks/README.md."""
