"""The simulator runs on the sync suite's real parts: its Celery worker fixture (on the
broker the suite is given) and PostgreSQL with committed data."""

from tests.sync.conftest import _broker_url, celery_worker_process, live_worker  # noqa: F401
