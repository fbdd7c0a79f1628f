"""One simulation run: draw the plan from the seed, play it step by step against the real
services, sandboxes and worker, check the invariants after every step, settle, check the
strong ones, and say what happened (or how it broke, with the last 20 steps)."""

from __future__ import annotations

import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management import call_command

from apps.fees.models import Fee, StudentCredit
from apps.fees.services import Origin, credit_apply
from apps.vendors.jobs import task_run
from apps.vendors.models import HeldMovement, OutboxItem

from . import checks, operations
from .clock import SimClock
from .operations import REGISTRY, SimulationFailure
from .parts import FILE_KINDS, VENDORS, Sandbox, WorkerLike, wait_for
from .world import World, world_build

LAST_STEPS = 20


@dataclass(frozen=True)
class PlannedStep:
    index: int
    name: str
    params: dict[str, Any]


@dataclass
class StepRecord:
    index: int
    name: str
    vendor: str
    outcome: str
    clock: str

    def line(self) -> str:
        at = f" [{self.vendor}]" if self.vendor else ""
        return f"  step {self.index:>5} {self.clock}  {self.name}{at}: {self.outcome}"


@dataclass
class Result:
    seed: int
    steps: int
    vendors: list[str]
    ok: bool = True
    failed_step: int | None = None  # None with ok=False: the settlement failed
    failed_operation: str = ""
    invariant: str = ""
    detail: str = ""
    log: list[StepRecord] = field(default_factory=list)
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    skipped: int = 0
    awaiting_staff: int = 0
    decided_by_staff: int = 0
    staff_decisions: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    settle_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """What `--json` prints."""
        return {
            "seed": self.seed,
            "steps": self.steps,
            "vendors": self.vendors,
            "result": "passed" if self.ok else "failed",
            "failed_step": self.failed_step,
            "failed_operation": self.failed_operation,
            "invariant": self.invariant,
            "detail": self.detail,
            "operations": dict(sorted(self.operations.items())),
            "faults": dict(sorted(self.faults.items())),
            "refused": self.refused,
            "skipped": self.skipped,
            "awaiting_staff": self.awaiting_staff,
            "decided_by_staff": self.decided_by_staff,
            "staff_decisions": dict(sorted(self.staff_decisions.items())),
            "elapsed_seconds": round(self.elapsed, 1),
            "settle_seconds": round(self.settle_seconds, 1),
            "last_steps": [r.line().strip() for r in self.log[-LAST_STEPS:]],
        }

    def report(self) -> str:
        if self.ok:
            return (
                f"simulate --seed {self.seed} --steps {self.steps}: passed in "
                f"{self.elapsed:.1f}s ({sum(self.faults.values())} faults injected)"
            )
        where = (
            f"step {self.failed_step} ({self.failed_operation})"
            if self.failed_step is not None
            else "the settlement phase"
        )
        lines = [
            f"simulate --seed {self.seed} --steps {self.steps}: FAILED at {where}",
            f"  invariant broken: {self.invariant}",
            f"  detail: {self.detail}",
            f"  last {min(LAST_STEPS, len(self.log))} steps:",
            *(r.line() for r in self.log[-LAST_STEPS:]),
            f"  replay: manage.py simulate --seed {self.seed} --steps {self.steps}"
            + (f" --vendors {','.join(self.vendors)}" if self.vendors != list(VENDORS) else ""),
        ]
        return "\n".join(lines)


def plan_draw(seed: int, steps: int, vendors: Sequence[str]) -> list[PlannedStep]:
    """The run's every choice, from its one random source. Drawn before anything runs, so
    the plan is the same whatever the worker's timing."""
    rng = random.Random(seed)
    ops = [op for op in REGISTRY.values() if not op.per_vendor or op.vendors_among(list(vendors))]
    weights = [op.weight for op in ops]
    plan = []
    for index in range(steps):
        op = rng.choices(ops, weights)[0]
        params: dict[str, Any] = {
            "a": rng.random(),
            "b": rng.random(),
            "i": rng.randrange(1 << 30),
            "j": rng.randrange(1 << 30),
            "k": rng.randrange(1 << 30),
            "tick": 5 + rng.random() * 55,  # seconds the clock moves before the step
            "vendor": rng.choice(op.vendors_among(list(vendors)) or list(vendors)),
        }
        plan.append(PlannedStep(index, op.name, params))
    return plan


def _due_repairs(world: World, step: int) -> None:
    """Faults whose time is up end, and a killed worker comes back."""
    for vendor, until in list(world.fault_until.items()):
        if step >= until:
            world.sandboxes[vendor].control.faults("ok")
            del world.fault_until[vendor]
    if world.worker_down_until is not None and step >= world.worker_down_until:
        world.worker.start()
        world.worker_down_until = None


def _staff_decide_all(world: World) -> None:
    """Staff answer every finding still waiting for them, each answer drawn from the run's
    seed (in the findings' order). An answer the ledger refuses (a waiver of more than is
    owed) is followed by the one that cannot be refused: dismissed, or kept owed. Then
    they apply every student's credit to that student's open fees."""
    rng = random.Random(f"settle-{world.seed}")
    for finding in operations.open_findings(world):
        outcome = operations.staff_decide(world, finding, rng.random())
        if "refused" in outcome:
            operations.staff_decide(
                world, finding, 0.99 if isinstance(finding, HeldMovement) else 0.0
            )
    # Money on a student's account while a fee of theirs is owed: staff apply it, oldest
    # fee first (auto-apply is off here), until the credit or the open fees run out.
    for account in StudentCredit.objects.filter(amount__gt=0).order_by("student_id"):
        for fee in Fee.objects.filter(
            student_id=account.student_id, status=Fee.Status.OPEN, balance__gt=0
        ).order_by("pk"):
            try:
                credit_apply(student=account.student, fee=fee, origin=Origin(user=world.staff))
            except ValidationError:
                continue  # the ledger says why not (a disputed fee, the credit used up)
            world.staff_decisions["credit_apply"] += 1


def _settle(world: World) -> None:
    """Faults off, the worker up, every queue drained, the nightly tasks run (pull,
    validate) until nothing changes; before the last round staff answer every finding left
    for them, and that round sends what their answers changed."""
    for box in world.sandboxes.values():
        box.control.faults("ok")
    world.fault_until.clear()
    if world.worker_down_until is not None or (
        world.worker.proc is not None and world.worker.proc.poll() is not None
    ):
        world.worker.start()
        world.worker_down_until = None
    # A vendor is backed off (in real time) after the faults; deliveries resume by themselves.
    for _round in range(3):
        if _round == 2:
            _staff_decide_all(world)
        for kind, integration in world.integrations.items():
            if kind in FILE_KINDS:
                # Results first: what they change goes back in the export after them.
                task_run(integration=integration, task="import-payments")
                task_run(integration=integration, task="export-fees")
            else:
                task_run(integration=integration, task="get-payments")
        wait_for(
            lambda: not OutboxItem.objects.exists(),
            timeout=180,
            what="the outbox to drain after the faults",
        )
        if _round == 0:
            checks.check_delivered(world)
        for kind, integration in world.integrations.items():
            task_run(
                integration=integration,
                task="validate-exports" if kind in FILE_KINDS else "validate",
            )
        wait_for(
            lambda: not OutboxItem.objects.exists(),
            timeout=180,
            what="the outbox to drain after validation",
        )


def run(
    *,
    seed: int,
    steps: int,
    worker: WorkerLike,
    vendors: Sequence[str] = VENDORS,
    plan: Sequence[PlannedStep] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> Result:
    """One run in an empty database, with tasks going to `worker` (which must be running on
    the same database and broker). `plan` replays a subset of a seed's plan (the shrinker)."""
    from config.celery import app

    vendors = list(vendors)
    result = Result(seed=seed, steps=steps, vendors=vendors)
    plan = list(plan) if plan is not None else plan_draw(seed, steps, vendors)
    started = time.monotonic()
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    sandboxes = {kind: Sandbox(kind) for kind in vendors}
    clock = SimClock.on_dst_eve(seed)
    current: PlannedStep | None = None
    try:
        with clock.installed():
            world = world_build(seed=seed, clock=clock, worker=worker, sandboxes=sandboxes)
            try:
                for current in plan:
                    _due_repairs(world, current.index)
                    clock.advance(current.params["tick"])
                    op = REGISTRY[current.name]
                    vendor = str(current.params["vendor"]) if op.per_vendor else ""
                    try:
                        outcome = op.run(world, current.params, current.index)
                    except SimulationFailure:
                        raise
                    except ValidationError as exc:
                        outcome = "refused: " + " ".join(exc.messages)[:120]
                    except Exception as exc:
                        raise SimulationFailure(
                            "no operation crashes",
                            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}",
                        ) from exc
                    result.operations[current.name] += 1
                    if outcome.startswith("refused"):
                        result.refused += 1
                    elif outcome.startswith("skipped"):
                        result.skipped += 1
                    record = StepRecord(
                        current.index,
                        current.name,
                        vendor,
                        outcome,
                        f"{clock.local():%m-%d %H:%M:%S%z}",
                    )
                    result.log.append(record)
                    if on_step is not None:
                        on_step(record)
                    checks.check_step(world)
                current = None
                settle_start = time.monotonic()
                _settle(world)
                checks.check_settled(world)
                result.settle_seconds = time.monotonic() - settle_start
            except SimulationFailure as failure:
                result.ok = False
                result.invariant = failure.invariant
                result.detail = failure.detail
                if current is not None:
                    result.failed_step = current.index
                    result.failed_operation = current.name
                    if not result.log or result.log[-1].index != current.index:
                        result.log.append(
                            StepRecord(current.index, current.name, "", "(failed here)", "")
                        )
            except TimeoutError as exc:
                result.ok = False
                result.invariant = NOTHING_DRAINS
                result.detail = str(exc)
            result.faults = world.faults
            result.awaiting_staff = len(world.awaiting_staff)
            result.decided_by_staff = len(world.decided_by_staff)
            result.staff_decisions = world.staff_decisions
    finally:
        for box in sandboxes.values():
            box.stop()
        app.conf.task_always_eager = eager
        result.elapsed = time.monotonic() - started
    return result


NOTHING_DRAINS = "the backlog drains once the faults are off"


def database_empty() -> None:
    """Between two runs in one database (the shrinker's trials)."""
    # flush sends post_migrate, which makes the staff groups again (apps.fees.roles).
    call_command("flush", interactive=False, verbosity=0)
