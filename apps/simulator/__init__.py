"""The seeded fault simulator (issue 16): a random walk through the whole money path, with
faults injected along the way and the ledger's invariants checked after every step.

`manage.py simulate --seed N --steps K` runs it; `tests/simulator/` runs a few fixed seeds.
See docs/simulator.md."""
