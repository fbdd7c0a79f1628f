"""Cut a failing plan down to a short failing sequence (delta debugging, Zeller's ddmin).

Each trial replays a subset of the original plan in an emptied database; a subset
"fails" when it breaks the same invariant. Trials are bounded: the worker's timing is not
part of the seed, so a shrink is a good lead, not a proof."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .runner import PlannedStep, Result

Trial = Callable[[Sequence[PlannedStep]], Result]


def shrink(
    plan: Sequence[PlannedStep], *, invariant: str, trial: Trial, max_trials: int = 40
) -> tuple[list[PlannedStep], int]:
    """The smallest failing subset found, and how many trials it took."""
    failing = list(plan)
    trials = 0

    def fails(subset: list[PlannedStep]) -> bool:
        nonlocal trials
        trials += 1
        result = trial(subset)
        return not result.ok and result.invariant == invariant

    n = 2
    while len(failing) >= 2 and trials < max_trials:
        size = max(1, len(failing) // n)
        chunks = [failing[i : i + size] for i in range(0, len(failing), size)]
        reduced = False
        for i in range(len(chunks)):
            if trials >= max_trials:
                break
            complement = [s for j, c in enumerate(chunks) if j != i for s in c]
            if complement and fails(complement):
                failing, n, reduced = complement, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(failing):
                break
            n = min(len(failing), n * 2)
    return failing, trials
