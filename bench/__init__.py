"""certsvc's benchmarks: one module per figure, each a ratio against a peer or a limit
measured in the same run. `bench/run-all` runs them all and writes docs/benchmarks.md."""
