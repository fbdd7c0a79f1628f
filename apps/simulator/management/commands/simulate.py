"""`manage.py simulate --seed N --steps K [--vendors …] [--json] [--shrink]`: the seeded
fault simulator (docs/simulator.md). It makes a database of its own (`<name>_simulate`,
dropped afterwards), starts the vendor sandboxes and a Celery worker on it, runs the walk,
and exits 1 if any invariant broke."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test.utils import override_settings

from apps.simulator.parts import VENDORS, Worker
from apps.simulator.runner import Result, StepRecord, database_empty, plan_draw, run
from apps.simulator.shrink import shrink

#: The test settings' short delays, so that outages play out in seconds here too.
FAST = {
    "FEESYNC_BACKOFF_BASE_SECONDS": 0.2,
    "FEESYNC_BACKOFF_CAP_SECONDS": 1.0,
    "FEESYNC_DELIVERY_LEASE_SECONDS": 15,
    "FEESYNC_DELIVERY_MAX_ATTEMPTS": 1000,
    "FEESYNC_API_AUTH_CACHE_SECONDS": 0,
    "PORTAL_PAGE_CACHE_SECONDS": 0,
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
}


class Command(BaseCommand):
    help = "Run the seeded fault simulator; exit 1 if any invariant broke."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, required=True, help="The run's random seed.")
        parser.add_argument("--steps", type=int, required=True, help="How many steps to run.")
        parser.add_argument(
            "--vendors",
            default=",".join(VENDORS),
            help=f"Comma-separated vendor sandboxes to run (default: {','.join(VENDORS)}).",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON summary.")
        parser.add_argument(
            "--shrink", action="store_true", help="On failure, cut the steps down (ddmin)."
        )
        parser.add_argument(
            "--shrink-trials", type=int, default=40, help="At most this many shrink trials."
        )
        parser.add_argument(
            "--keep-db",
            action="store_true",
            help="Keep the simulation's database afterwards (to look into a failure).",
        )
        parser.add_argument(
            "--broker",
            default="",
            help="Celery broker (Redis or RabbitMQ) for the simulation's worker; default: "
            "CELERY_TEST_BROKER_URL, else CELERY_BROKER_URL. Use one no other worker reads.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        vendors = [v.strip() for v in options["vendors"].split(",") if v.strip()]
        unknown = sorted(set(vendors) - set(VENDORS))
        if unknown or not vendors:
            raise CommandError(
                f"Unknown vendor {', '.join(unknown) or '(none given)'}; "
                f"use any of {', '.join(VENDORS)}."
            )
        if options["steps"] < 1:
            raise CommandError("--steps must be at least 1.")
        db = settings.DATABASES["default"]
        if db["ENGINE"] != "django.db.backends.postgresql":
            raise CommandError("simulate runs on PostgreSQL: set DATABASE_URL.")
        broker = (
            options["broker"]
            or os.environ.get("CELERY_TEST_BROKER_URL", "")
            or settings.CELERY_BROKER_URL
        )
        if not broker.startswith(("redis://", "amqp://")):
            raise CommandError(
                f"simulate needs a real broker (Redis or RabbitMQ), not {broker.split(':')[0]}: "
                "pass --broker or set CELERY_TEST_BROKER_URL."
            )
        from config.celery import app

        app.conf.update(broker_url=broker)
        original = db["NAME"]
        db.setdefault("TEST", {})["NAME"] = f"{original}_simulate"
        verbosity = int(options["verbosity"])
        with override_settings(**FAST, CELERY_BROKER_URL=broker):
            name = connection.creation.create_test_db(
                verbosity=0, autoclobber=True, serialize=False
            )
            worker = Worker(db_url=_url(db, name), broker_url=broker)
            try:
                worker.start()
                result = self._run(options, vendors, worker, verbosity)
            finally:
                worker.stop()
                if options["keep_db"]:
                    self.stderr.write(f"kept the simulation's database {name}")
                    connection.close()
                    db["NAME"] = original
                else:
                    connection.creation.destroy_test_db(original, verbosity=0)
        if options["json"]:
            self.stdout.write(json.dumps(result.summary(), indent=2))
        else:
            self.stdout.write(result.report())
            self.stdout.write(f"operations: {dict(sorted(result.operations.items()))}")
            self.stdout.write(f"faults: {dict(sorted(result.faults.items()))}")
        if not result.ok:
            sys.exit(1)

    def _run(
        self, options: dict[str, Any], vendors: list[str], worker: Worker, verbosity: int
    ) -> Result:
        seed, steps = options["seed"], options["steps"]

        def show(record: StepRecord) -> None:
            if verbosity >= 2:
                self.stderr.write(record.line())

        result = run(seed=seed, steps=steps, vendors=vendors, worker=worker, on_step=show)
        if result.ok or not options["shrink"]:
            return result
        plan = plan_draw(seed, steps, vendors)
        if result.failed_step is not None:
            plan = plan[: result.failed_step + 1]

        def trial(subset: Any) -> Result:
            database_empty()
            return run(seed=seed, steps=steps, vendors=vendors, worker=worker, plan=subset)

        smallest, trials = shrink(
            plan, invariant=result.invariant, trial=trial, max_trials=options["shrink_trials"]
        )
        self.stderr.write(
            f"shrunk to {len(smallest)} steps in {trials} trials: "
            + ", ".join(f"{s.index}:{s.name}" for s in smallest)
        )
        return result


def _url(db: dict[str, Any], name: str) -> str:
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{db['USER']}{password}@{host}:{db.get('PORT') or 5432}/{name}"
