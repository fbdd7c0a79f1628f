"""The Celery brokers the suite runs the real worker on (docs/brokers.md).

A test marked `all_brokers` runs once per supported broker: `[redis]` on
CELERY_TEST_BROKER_URL and `[rabbitmq]` on CELERY_TEST_RABBITMQ_URL (tests/conftest.py
parametrizes the session's `celery_broker` fixture). Producer and worker must use the same
broker: `producing_to` points the test process's Celery app at it, and the worker fixture
(tests/sync/conftest.py) starts its process with the same URL. The embedded filesystem
broker of `make run` has an end-to-end smoke test of its own (tests/sync/test_brokers.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kombu.pools
from celery import Celery
from django.conf import settings
from kombu import Connection

from config.brokers import broker_kind, transport_options

#: Every broker a test marked `all_brokers` runs on, in the order they run.
ALL_BROKERS = ("redis", "rabbitmq")
#: The queues FeeSync's workers consume (CELERY_TASK_ROUTES; Procfile).
QUEUES = ("celery", "delivery")
#: Set by CI (.ci/run): a broker that does not answer fails its tests instead of skipping them.
REQUIRE_ENV = "CI_REQUIRE_BROKERS"


@dataclass(frozen=True)
class Broker:
    name: str  # "redis", "rabbitmq" or "filesystem"
    url: str
    #: Only for the filesystem broker: the folder its producers and workers share.
    filesystem_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def transport_options(self) -> dict[str, Any]:
        return transport_options(self.url, self.filesystem_dir or Path("."))

    def worker_env(self) -> dict[str, str]:
        """What a worker process needs in its environment (config.settings.test reads it)."""
        env = {"CELERY_TEST_BROKER_URL": self.url, **self.extra_env}
        if self.filesystem_dir is not None:
            env["FEESYNC_FILESYSTEM_BROKER_DIR"] = str(self.filesystem_dir)
        return env

    def connection(self) -> Connection:
        return Connection(self.url, transport_options=self.transport_options)

    @property
    def shown_url(self) -> str:
        """The URL with its password masked, for messages."""
        return str(Connection(self.url).as_uri())


def broker_named(name: str) -> Broker:
    """The test broker called `name` ("redis" or "rabbitmq"), from the settings."""
    url = settings.CELERY_BROKER_URL if name == "redis" else settings.CELERY_TEST_RABBITMQ_URL
    if broker_kind(url) != name:
        raise ValueError(
            f"The {name} test broker's URL is {Connection(url).as_uri()!r}, not a {name} URL "
            f"(set {'CELERY_TEST_BROKER_URL' if name == 'redis' else 'CELERY_TEST_RABBITMQ_URL'})."
        )
    return Broker(name=name, url=url)


def unreachable(broker: Broker) -> str | None:
    """Why `broker` cannot be used, or None when it answers."""
    try:
        with broker.connection() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the answer
        return f"{type(exc).__name__}: {exc}"
    return None


def require_broker(broker: Broker) -> None:
    """Skip (a developer's machine) or fail (CI) when `broker` does not answer."""
    import pytest

    problem = unreachable(broker)
    if problem is None:
        return
    message = f"The {broker.name} broker at {broker.shown_url} does not answer ({problem})."
    if os.environ.get(REQUIRE_ENV) or broker.name == "redis":
        pytest.fail(
            f"{message} The suite needs it"
            + (f" ({REQUIRE_ENV} is set)." if broker.name != "redis" else ".")
        )
    pytest.skip(f"{message} Start RabbitMQ or set CELERY_TEST_RABBITMQ_URL to run these.")


def purge(broker: Broker, app: Celery) -> None:
    """Empty the queues the workers consume: tasks left by an earlier (killed) run would
    otherwise be delivered to this one."""
    if broker.name == "redis":
        import redis

        redis.Redis.from_url(broker.url).flushdb()
        return
    with broker.connection() as conn:
        for name in QUEUES:
            # Declared as Celery declares them (so the worker's own declaration agrees).
            queue = app.amqp.queues[name](conn.default_channel)
            queue.declare()
            queue.purge()


def queue_length(broker: Broker, name: str) -> int:
    """How many tasks wait in queue `name` (0 when it does not exist yet)."""
    with broker.connection() as conn:
        channel = conn.channel()
        try:
            return int(channel.queue_declare(queue=name, passive=True).message_count)
        except Exception:  # noqa: BLE001 - no such queue (yet): nothing waits in it
            return 0
        finally:
            try:
                channel.close()
            except Exception:  # noqa: BLE001, S110 - a channel the broker already closed
                pass


@contextmanager
def producing_to(app: Celery, broker: Broker) -> Iterator[None]:
    """Tasks published by this (the test) process go to `broker` while inside."""
    before = (app.conf.broker_url, app.conf.broker_transport_options)
    _use(app, broker.url, broker.transport_options)
    try:
        yield
    finally:
        _use(app, *before)


def _use(app: Celery, url: str, options: dict[str, Any]) -> None:
    # The app keeps a pool of connections (and of producers on them) to the broker it first
    # connected to, taken from kombu's process-wide pools, which are keyed by the broker's
    # URL: close and forget them all (a closed pool left there would be handed back on the
    # return to that broker), so that the next publish connects to the new one.
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url
    app.conf.broker_transport_options = options
