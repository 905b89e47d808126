"""Side-by-side benchmarks: every speed claim is a ratio against a reference measured in the same run.

`python -m bench` prints one table and writes docs/benchmarks.md (`--quick` writes runs/bench-quick.md);
it exits 1 when a target is missed.
"""
