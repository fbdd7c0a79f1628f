"""The shrinker cuts a failing plan down to the steps that matter (ddmin)."""

from __future__ import annotations

from apps.simulator.runner import PlannedStep, Result, plan_draw
from apps.simulator.shrink import shrink


def test_a_failure_needing_two_steps_shrinks_to_those_two():
    plan = [PlannedStep(i, "fee_create", {}) for i in range(40)]

    def trial(subset):
        indexes = {s.index for s in subset}
        broken = {3, 27} <= indexes
        return Result(seed=1, steps=40, vendors=[], ok=not broken, invariant="x" if broken else "")

    smallest, trials = shrink(plan, invariant="x", trial=trial, max_trials=200)
    assert [s.index for s in smallest] == [3, 27]
    assert trials <= 200


def test_another_invariant_broken_does_not_count_as_the_same_failure():
    plan = [PlannedStep(i, "fee_create", {}) for i in range(8)]

    def trial(subset):
        return Result(seed=1, steps=8, vendors=[], ok=False, invariant="something else")

    smallest, _ = shrink(plan, invariant="x", trial=trial, max_trials=50)
    assert len(smallest) == 8


def test_a_seed_draws_the_same_plan_every_time():
    vendors = ["payschools", "communitypass", "fileexchange"]
    assert plan_draw(7, 200, vendors) == plan_draw(7, 200, vendors)
    assert plan_draw(7, 200, vendors) != plan_draw(8, 200, vendors)
    # An operation that needs a file exchange only ever draws one.
    for step in plan_draw(7, 500, vendors):
        if step.name.startswith("fx_"):
            assert step.params["vendor"] == "fileexchange"
