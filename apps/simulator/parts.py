"""The real parts a simulation drives: vendor sandboxes on loopback and a Celery worker.

The command starts its own (`Worker`); the pytest entry hands in the suite's worker fixture
instead (anything with `start()`, `kill()` and `proc` will do)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from apps.vendors.registry import load_sandbox
from apps.vendors.sandboxes.client import SandboxControl

ROOT = Path(__file__).resolve().parents[2]
#: Where each vendor's API lives under its sandbox's root (the integration's service URL);
#: the file exchange's is its control API (validation reads its state there).
SERVICE_PATHS = {"payschools": "/soap", "communitypass": "/v1", "fileexchange": "/"}
VENDORS = tuple(SERVICE_PATHS)
#: Kinds that take fees as files and return results as files (no pulls, no deliveries).
FILE_KINDS = frozenset({"fileexchange"})


class WorkerLike(Protocol):
    proc: subprocess.Popen[bytes] | None

    def start(self) -> None: ...

    def kill(self) -> None: ...


def wait_for(
    check: Callable[[], Any], *, timeout: float = 90.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll until `check()` is truthy; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Sandbox:
    """A vendor sandbox in this process (threads on a free loopback port)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.server = load_sandbox(kind).make_server(0)
        self.server.start()
        self.url: str = self.server.url
        self.control = SandboxControl(self.url, timeout=60)
        #: The file exchange's directory (its inbound and outbound), reached as a local path.
        self.root: Path | None = getattr(self.server, "root", None)

    @property
    def service_url(self) -> str:
        return self.url + SERVICE_PATHS[self.kind]

    def state(self) -> dict[str, Any]:
        return self.control.state()

    def stop(self) -> None:
        self.server.shutdown()


class Worker:
    """A `celery worker -B` process on the simulation's database and broker, with the
    outbox sweeper every second (the test settings' short backoffs)."""

    def __init__(self, *, db_url: str, broker_url: str) -> None:
        self.db_url = db_url
        self.broker_url = broker_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp = tempfile.mkdtemp(prefix="feesync-simulate-")
        self.log_path = Path(self.tmp) / "worker.log"
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": self.db_url,
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "CELERY_TEST_BROKER_URL": self.broker_url,
                "FEESYNC_SWEEP_SECONDS": "1",
                "CELERY_BEAT_SCHEDULER": "celery.beat:PersistentScheduler",
            }
        )
        return env

    def start(self) -> None:
        self.starts += 1
        size = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "-s",
                str(Path(self.tmp) / "beat-schedule"),
                "--loglevel",
                "INFO",
                "-Q",
                "celery,delivery",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                # A node name per start: on RabbitMQ the remote-control queue of a killed
                # predecessor may still be held (exclusive) when it comes back.
                f"simulate-{os.getpid()}-{self.starts}@%h",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: b"ready" in self.log_path.read_bytes()[size:],
            timeout=60,
            what="the Celery worker to start",
        )

    def kill(self) -> None:
        """SIGKILL the worker and its pool: a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if hasattr(self, "log"):
            self.log.close()
