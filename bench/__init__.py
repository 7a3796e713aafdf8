"""The benchmarks: each module runs as `python -m bench.<name>` from the repository root, or through
`python bench/run.py <name>` (a fresh interpreter per benchmark). `bench.harness` is the appliance
process shared with the test suite."""
