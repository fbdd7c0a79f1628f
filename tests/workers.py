"""The real Celery worker of the tests that need one (tests/sync, the simulator's seeds): a
`celery worker` process (with its embedded beat running the outbox sweeper) against the test
database, on the session's broker (`celery_broker`, tests/brokers.py: Redis, or each broker in
turn for the tests marked `all_brokers`). Its fixtures are the suite's (tests/conftest.py), so
every directory shares one worker per broker. Tests with it use committed data
(`transactional_db`) because the worker is another process."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.conf import settings

from tests.brokers import Broker, purge

ROOT = Path(__file__).resolve().parents[1]


def wait_for(
    check: Callable[[], Any],
    *,
    timeout: float = 90.0,
    interval: float = 0.1,
    what: str = "condition",
) -> Any:
    """Poll until `check()` is truthy. The bound is generous on purpose: speed is measured
    by the benchmarks, not here."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


#: Numbers each worker start (the node names above).
_STARTS = itertools.count(1)


class Worker:
    """A real `celery worker` process (with its embedded beat unless `beat=False`) against
    the test database and `broker`."""

    #: The workers started and not stopped yet, whatever their broker.
    running: ClassVar[set[Worker]] = set()

    def __init__(
        self,
        db_url: str,
        broker: Broker,
        *,
        name: str = "test",
        beat: bool = True,
        concurrency: int = 2,
    ) -> None:
        self.db_url = db_url
        self.broker = broker
        self.name = name
        self.beat = beat
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp = tempfile.mkdtemp(prefix="feesync-worker-")
        self.log_path = Path(self.tmp) / "worker.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": self.db_url,
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "FEESYNC_SWEEP_SECONDS": "1",
                # The test database is flushed between tests; keep the schedule in a file.
                "CELERY_BEAT_SCHEDULER": "celery.beat:PersistentScheduler",
                **self.broker.worker_env(),
            }
        )
        return env

    def start(self) -> None:
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                *(["-B", "-s", str(Path(self.tmp) / "beat-schedule")] if self.beat else []),
                "--loglevel",
                "INFO",
                "-Q",
                "celery,delivery",  # deliveries have a queue of their own
                "--concurrency",
                str(self.concurrency),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                # A node name of its own each start: on RabbitMQ a worker's remote-control
                # queue (`<node>.celery.pidbox`) is exclusive to its connection, and the
                # broker may not have dropped a killed predecessor's yet (RESOURCE_LOCKED).
                f"{self.name}-{os.getpid()}-{next(_STARTS)}@%h",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        Worker.running.add(self)
        wait_for(
            lambda: b"ready" in self.log_path.read_bytes(),
            timeout=60,
            what="the Celery worker to start",
        )

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Wait (bounded) until every task the worker's log says it received has finished."""
        done = re.compile(rb"\] (?:succeeded|raised|retry|failed|ignored)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return
            log = self.log_path.read_bytes()[getattr(self, "log_start", 0) :]
            if log.count(b"] received") <= len(done.findall(log)):
                return
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the worker and its pool: a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        Worker.running.discard(self)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        Worker.running.discard(self)
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def tasks_received(self, since: int = 0) -> list[str]:
        """The names of the tasks this worker received after byte `since` of its log."""
        with open(self.log_path, "rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return re.findall(r"Task (\S+?)\[[0-9a-f-]+\] received", text)


def database_url_for_workers() -> str:
    """The test database, as a URL for another process."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("The sync tests run on PostgreSQL (set DATABASE_URL).")
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, celery_broker) -> Iterator[Worker]:
    """The session's worker on `celery_broker` (one per broker: tests marked `all_brokers`
    run on each, tests/conftest.py)."""
    from config.celery import app

    db_url = database_url_for_workers()
    purge(celery_broker, app)
    worker = Worker(db_url, celery_broker)
    worker.start()
    yield worker
    worker.stop()
    app.conf.task_always_eager = True


@pytest.fixture
def live_worker(
    celery_worker_process, celery_producer, transactional_db, settings
) -> Iterator[Worker]:
    """Tasks go to the real worker (not eager) for the duration of a test."""
    from config.celery import app

    if celery_worker_process.proc and celery_worker_process.proc.poll() is not None:
        celery_worker_process.start()  # a test killed (or stopped) it on purpose
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    yield celery_worker_process
    app.conf.task_always_eager = True
    # Let a task the test left running finish before the database is flushed: the flush's
    # TRUNCATE and a task still writing deadlock (seen as an error at teardown).
    celery_worker_process.wait_idle()


@pytest.fixture
def second_worker(live_worker) -> Iterator[Worker]:
    """Another worker process beside the session's, on the same broker and queues (the
    README's scale-out): concurrency 1 and no beat of its own."""
    worker = Worker(
        live_worker.db_url, live_worker.broker, name="second", beat=False, concurrency=1
    )
    worker.start()
    yield worker
    worker.stop()
