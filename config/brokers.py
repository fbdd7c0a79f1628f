"""The Celery broker's transport options, per broker (docs/brokers.md).

FeeSync runs on three brokers: Redis and RabbitMQ on real servers, kombu's filesystem
transport for `make run`. Their transport options have nothing in common, and an option one
transport needs means nothing (or something else) to another, so the settings ask here for
the options of the broker the URL names instead of setting one dictionary for all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Redis re-delivers a task nobody acknowledged within this many seconds, *even if it is still
#: running*. It must exceed every task's time limit (CELERY_TASK_TIME_LIMIT, 35 minutes) and
#: any countdown/ETA, or a long nightly task would run twice at once
#: (https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout).
REDIS_VISIBILITY_TIMEOUT_SECONDS = 4 * 3600


def broker_kind(url: str) -> str:
    """ "redis", "rabbitmq" or "filesystem" (or the URL's scheme for anything else)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in {"redis", "rediss", "sentinel"}:
        return "redis"
    if scheme in {"amqp", "amqps", "pyamqp"}:
        return "rabbitmq"
    return scheme


def transport_options(url: str, filesystem_dir: Path) -> dict[str, Any]:
    """The `CELERY_BROKER_TRANSPORT_OPTIONS` for the broker at `url`."""
    kind = broker_kind(url)
    if kind == "filesystem":
        # Producers and workers of one machine share these folders; the default polling
        # interval (1 s) would delay every push by up to a second.
        return {
            "data_folder_in": str(filesystem_dir / "queue"),
            "data_folder_out": str(filesystem_dir / "queue"),
            "processed_folder": str(filesystem_dir / "processed"),
            "control_folder": str(filesystem_dir / "control"),
            "store_processed": False,
            "polling_interval": 0.2,
        }
    if kind == "redis":
        return {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_SECONDS}
    if kind == "rabbitmq":
        # RabbitMQ re-delivers an unacknowledged task only when its consumer's connection
        # closes (a dead worker), never on a timer, so it needs no visibility timeout. Publisher
        # confirms: a task published (a delivery queued after a fee's change committed) is
        # known to be stored by the broker, not just written to a socket that may be dropping.
        return {"confirm_publish": True}
    return {}


def make_filesystem_dirs(filesystem_dir: Path) -> None:
    for sub in ("queue", "processed", "control"):
        (filesystem_dir / sub).mkdir(parents=True, exist_ok=True)


def time_limits(url: str, consumer_timeout_seconds: float) -> tuple[int, int]:
    """(soft, hard) task time limits in seconds: 30 and 35 minutes, except on a RabbitMQ
    whose consumer timeout is shorter. RabbitMQ closes the channel of a consumer that holds
    an unacknowledged task longer than `consumer_timeout` (30 minutes by default), and with
    acks_late a running task is unacknowledged: the task would be re-delivered while it still
    runs, and again after each re-run that takes as long. So the hard limit stays a minute
    below the server's timeout (raise `consumer_timeout` in rabbitmq.conf and
    FEESYNC_RABBITMQ_CONSUMER_TIMEOUT_SECONDS together to allow longer tasks)."""
    soft, hard = 30 * 60, 35 * 60
    if broker_kind(url) == "rabbitmq":
        hard = min(hard, int(consumer_timeout_seconds) - 60)
        soft = min(soft, hard - 5 * 60)
    return soft, hard
