"""gunicorn serving the project for a benchmark: one starter shared by the portal's and the
partner API's benchmarks (each chooses its worker class, processes and threads).

Imports no Django: the benchmark process has its settings already, the server gets its own
environment (`config.settings.local`, DEBUG off, the bench database)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: A static file WhiteNoise serves through the same gunicorn: the readiness probe, and the
#: benchmarks' floor (a round trip with no Django view behind it).
STATIC_PATH = "/static/portal/portal.css"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    base: str
    pid: int
    port: int = 0

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by gunicorn's workers (the children of its
        master process), from /proc."""
        hz = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:  # ppid
                total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / hz


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - our loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def gunicorn(
    database_url: str,
    *,
    name: str,
    workers: int,
    worker_class: str = "sync",
    threads: int = 1,
    keep_alive: int = 5,
    env: Mapping[str, str] | None = None,
    ready_within_s: float = 120,
) -> Iterator[Server]:
    """gunicorn serving `config.wsgi` on a free loopback port; stopped (by its pid) at the
    end. `name` names its log's folder (printed when it fails). The readiness probe is
    patient: on a busy machine the workers take seconds to import Django."""
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "memory://",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    log = Path(tempfile.mkdtemp(prefix=f"feesync-bench-{name}-")) / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--worker-class", worker_class]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    command += ["--keep-alive", str(keep_alive)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own server, fixed arguments
            command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within_s
        while not _answers(base + STATIC_PATH):
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({proc.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"gunicorn did not answer within {ready_within_s:.0f} s; see {log}"
                )
            time.sleep(0.3)
        yield Server(base=base, pid=proc.pid, port=port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
