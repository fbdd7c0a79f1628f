"""Each broker gets the settings it needs and none meant for another (config/brokers.py,
docs/brokers.md). The brokers themselves are exercised end to end in tests/sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.brokers import broker_kind, time_limits, transport_options


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://cache.example:6380/0", "redis"),
        ("amqp://guest:guest@127.0.0.1:5672//", "rabbitmq"),
        ("amqps://u:p@mq.example/feesync", "rabbitmq"),
        ("pyamqp://u:p@mq.example//", "rabbitmq"),
        ("filesystem://", "filesystem"),
    ],
)
def test_the_broker_is_named_by_its_url(url, kind):
    assert broker_kind(url) == kind


def test_redis_gets_a_visibility_timeout_longer_than_any_task_may_run():
    options = transport_options("redis://127.0.0.1:6379/0", Path("/unused"))
    _, hard = time_limits("redis://127.0.0.1:6379/0", 1800)
    assert options["visibility_timeout"] > hard
    assert "confirm_publish" not in options


def test_rabbitmq_gets_publisher_confirms_and_no_redis_option():
    options = transport_options("amqp://guest:guest@127.0.0.1:5672//", Path("/unused"))
    assert options == {"confirm_publish": True}


def test_the_filesystem_broker_keeps_its_folders_where_it_is_told(tmp_path):
    options = transport_options("filesystem://", tmp_path)
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "queue")
    assert options["processed_folder"] == str(tmp_path / "processed")
    assert "visibility_timeout" not in options


def test_on_rabbitmq_a_task_is_stopped_before_the_servers_consumer_timeout():
    # RabbitMQ's default consumer_timeout is 30 minutes: a task still running then would be
    # re-delivered while it runs. The hard limit stays a minute below it...
    soft, hard = time_limits("amqp://mq//", 1800)
    assert (soft, hard) == (24 * 60, 29 * 60)
    # ...and a server configured for longer tasks gets the usual limits back.
    assert time_limits("amqp://mq//", 3600) == (30 * 60, 35 * 60)
    assert time_limits("redis://r/0", 1800) == (30 * 60, 35 * 60)
