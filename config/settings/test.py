"""The test suite. CI sets DATABASE_URL to PostgreSQL; without it the suite still runs on SQLite."""

from pathlib import Path

from config.brokers import broker_kind, make_filesystem_dirs, time_limits, transport_options

from .base import *  # noqa: F403
from .base import FEESYNC_FILESYSTEM_BROKER_DIR, FEESYNC_RABBITMQ_CONSUMER_TIMEOUT_SECONDS, env

DEBUG = False
SECRET_KEY = "test-only-secret-key"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Eager by default; the sync tests switch to a real worker on this broker (tests/sync), and
# the tests marked `all_brokers` run once on it and once on RabbitMQ (tests/brokers.py).
CELERY_BROKER_URL = env("CELERY_TEST_BROKER_URL", default="redis://127.0.0.1:6379/15")
CELERY_TEST_RABBITMQ_URL = env(
    "CELERY_TEST_RABBITMQ_URL", default="amqp://guest:guest@127.0.0.1:5672//"
)
CELERY_BROKER_TRANSPORT_OPTIONS = transport_options(
    CELERY_BROKER_URL, Path(FEESYNC_FILESYSTEM_BROKER_DIR)
)
if broker_kind(CELERY_BROKER_URL) == "filesystem":
    make_filesystem_dirs(Path(FEESYNC_FILESYSTEM_BROKER_DIR))
CELERY_TASK_SOFT_TIME_LIMIT, CELERY_TASK_TIME_LIMIT = time_limits(
    CELERY_BROKER_URL, FEESYNC_RABBITMQ_CONSUMER_TIMEOUT_SECONDS
)
# Short delays so outage scenarios play out in seconds.
FEESYNC_BACKOFF_BASE_SECONDS = 0.2
FEESYNC_BACKOFF_CAP_SECONDS = 1.0
# Longer than any one batch takes on a busy machine (Community Pass' own retries of a failing
# push take up to ~8 s): a lease that ran out mid-batch would let a second delivery take the
# same items and make attempt counts depend on the machine's load.
FEESYNC_DELIVERY_LEASE_SECONDS = 15
FEESYNC_DELIVERY_MAX_ATTEMPTS = 1000
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Most portal tests read the page's context; the cache has tests of its own.
PORTAL_PAGE_CACHE_SECONDS = 0
# Every partner-API test checks credentials afresh; tests/partner_api/test_auth_cache.py turns
# the verified-credentials cache on.
FEESYNC_API_AUTH_CACHE_SECONDS = 0
