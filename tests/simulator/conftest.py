"""The simulator runs on the suite's real parts: its Celery worker fixture (on the broker
the suite is given, each broker in turn for the tests marked `all_brokers`) and PostgreSQL
with committed data."""

from tests.workers import celery_worker_process, live_worker  # noqa: F401
