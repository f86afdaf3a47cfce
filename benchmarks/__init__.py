"""Benchmark scripts for setfix. Run `python -m benchmarks [name ...]`; results go to
`benchmarks/results/` as JSON (with machine, versions and configuration) and PNG."""
