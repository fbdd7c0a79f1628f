"""The simulator's fixed CI seeds (issue 16): each a short random walk through the money
path with faults injected, on the real worker, sandboxes and PostgreSQL. A failure prints
the seed, the step, the operation, the invariant broken and the last 20 steps; replay it
with `manage.py simulate --seed N --steps K`."""

from __future__ import annotations

import pytest

from apps.simulator.runner import run

#: Seeds and lengths chosen so that together they take a few minutes on a quiet machine.
CI_SEEDS = [(1, 300), (2, 300), (3, 300), (4, 300)]

pytestmark = [pytest.mark.slow, pytest.mark.all_brokers]


@pytest.mark.parametrize(("seed", "steps"), CI_SEEDS, ids=[f"seed-{s}" for s, _ in CI_SEEDS])
def test_ci_seed_keeps_every_invariant(live_worker, seed, steps):
    result = run(seed=seed, steps=steps, worker=live_worker)
    assert result.ok, result.report()
    assert sum(result.faults.values()) > 0  # the walk did inject faults
