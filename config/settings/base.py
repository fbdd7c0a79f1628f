"""Settings shared by every environment.

Everything that differs between a laptop and a district's servers comes from the
environment (django-environ: https://django-environ.readthedocs.io/). With no environment
at all FeeSync runs on SQLite and an embedded (filesystem) Celery broker, so `make run`
needs nothing installed or started.
"""

from pathlib import Path

import django_stubs_ext
import environ

from config.brokers import broker_kind, make_filesystem_dirs, time_limits, transport_options

# Lets classes subscript Django's generics at run time (`forms.ModelForm[Fee]`,
# `admin.ModelAdmin[Student]`), as the type checker reads them (django-stubs).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
env.read_env(str(BASE_DIR / ".env"), overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-development-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "apps.common.admin_apps.FeeSyncAdminConfig",  # django.contrib.admin, our site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_celery_beat",
    "auditlog",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "apps.common",
    "apps.students",
    "apps.categories",
    "apps.accounts",
    "apps.fees",
    "apps.vendors",
    "apps.portal",
    "apps.roster",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files served by FeeSync itself, not a CDN
    "apps.partner_api",
    "apps.accounting",
    "apps.simulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): has this session given a two-step code (django-otp).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Staff are signed out when idle or after a working day (config/security/sessions.py).
    "config.security.sessions.StaffSessionLimitsMiddleware",
    # Staff with an authenticator app must have given its code; district admins may be
    # required to set one up (config/security/two_step.py).
    "config.security.two_step.StaffTwoStepMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records who made each audited change (django-auditlog).
    "auditlog.middleware.AuditlogMiddleware",
    # Locks an account after repeated wrong passwords (django-axes); must be last.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite in WAL mode by default so the web process, the worker and beat can share it.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'feesync.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# The partner API's hot statements (apps/common/sql.prepared_cursor) are prepared once per
# connection on PostgreSQL. Turn off (0) behind a connection pooler in transaction mode that
# cannot keep prepared statements (PgBouncer before 1.21).
FEESYNC_DB_PREPARE = env.bool("FEESYNC_DB_PREPARE", default=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# With a shared cache (CACHE_URL, e.g. redis://127.0.0.1:6379/2) sessions are read from it and
# written through to the database, so a signed-in page costs no session query (the parent
# portal's hot path). Without one, sessions stay in the database: a per-process cache would
# let a signed-out session live on in the other web processes.
# https://docs.djangoproject.com/en/5.2/topics/http/sessions/#using-cached-sessions
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://feesync")}
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if env("CACHE_URL", default="")
    else "django.contrib.sessions.backends.db"
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("FEESYNC_TIME_ZONE", default="America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

LOGIN_URL = "admin:login"

# --- Celery ---------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# Default: kombu's filesystem transport, an "embedded" broker that needs no server (`make
# run`); on real servers Redis or RabbitMQ. Each has transport options of its own
# (config/brokers.py, docs/brokers.md).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
# Where the filesystem broker keeps its messages (producers and workers must agree).
FEESYNC_FILESYSTEM_BROKER_DIR = env.path(
    "FEESYNC_FILESYSTEM_BROKER_DIR", default=VAR_DIR / "broker"
)
CELERY_BROKER_TRANSPORT_OPTIONS = transport_options(
    CELERY_BROKER_URL, Path(FEESYNC_FILESYSTEM_BROKER_DIR)
)
if broker_kind(CELERY_BROKER_URL) == "filesystem":
    make_filesystem_dirs(Path(FEESYNC_FILESYSTEM_BROKER_DIR))
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# A task is acknowledged only when it finishes, and re-queued if its worker dies, so a
# crash mid-task re-runs it (tasks are written to be safe to run twice).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# RabbitMQ's `consumer_timeout` (rabbitmq.conf; 30 minutes unless the server says otherwise):
# on RabbitMQ the time limits stay below it (config/brokers.py, docs/brokers.md).
FEESYNC_RABBITMQ_CONSUMER_TIMEOUT_SECONDS = env.float(
    "FEESYNC_RABBITMQ_CONSUMER_TIMEOUT_SECONDS", default=1800
)
CELERY_TASK_SOFT_TIME_LIMIT, CELERY_TASK_TIME_LIMIT = time_limits(
    CELERY_BROKER_URL, FEESYNC_RABBITMQ_CONSUMER_TIMEOUT_SECONDS
)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = env(
    "CELERY_BEAT_SCHEDULER", default="django_celery_beat.schedulers:DatabaseScheduler"
)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# The outbox sweeper is the one system-wide schedule; integration tasks have beat rows of
# their own (apps/vendors/schedules.py).
FEESYNC_SWEEP_SECONDS = env.float("FEESYNC_SWEEP_SECONDS", default=60)
# Roster import (docs/roster.md): the largest share of active students one import may make
# inactive without the explicit override (a truncated file must not empty the district).
ROSTER_DEACTIVATE_SHARE = env.str("ROSTER_DEACTIVATE_SHARE", default="0.05")
CELERY_BEAT_SCHEDULE = {
    "sweep-outbox": {"task": "apps.vendors.tasks.sweep_outbox", "schedule": FEESYNC_SWEEP_SECONDS},
    # Idempotency-Key responses older than FEESYNC_IDEMPOTENCY_HOURS (at least 24).
    "purge-idempotency-keys": {
        "task": "apps.partner_api.tasks.purge_idempotency_keys",
        "schedule": 3600.0,
    },
}
# Deliveries to vendors have a queue of their own, so that long tasks (nightly validation,
# exports, bulk jobs) on the default queue never hold up a fee on its way to a vendor. Every
# worker that should deliver consumes it: `celery -A config worker -Q celery,delivery`
# (Procfile, tests/sync/conftest.py); the Procfile also runs a worker for it alone.
# https://docs.celeryq.dev/en/stable/userguide/routing.html
CELERY_TASK_ROUTES = {"apps.vendors.tasks.deliver_outbox": {"queue": "delivery"}}

# --- Security --------------------------------------------------------------------------
# django-axes pauses sign-in after repeated wrong passwords (config/security/throttle.py;
# https://django-axes.readthedocs.io/en/latest/4_configuration.html):
# - a username from one address after AXES_FAILURE_LIMIT, so wrong passwords typed for `admin`
#   elsewhere never lock `admin` out here;
# - one address, all usernames together, after FEESYNC_ADDRESS_FAILURE_LIMIT (password
#   spraying). Higher, because many families sign in from one school or district address
#   (NAT); 0 turns this limit off.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
FEESYNC_ADDRESS_FAILURE_LIMIT = env.int("FEESYNC_ADDRESS_FAILURE_LIMIT", default=50)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "config.security.throttle.SignInThrottleHandler"
AXES_RESET_ON_SUCCESS = True
# The client address is REMOTE_ADDR unless the district runs N reverse proxies of its own in
# front of Django (each appending to X-Forwarded-For): then set FEESYNC_TRUSTED_PROXY_COUNT=N.
# Behind a proxy with this left at 0 everyone shares the proxy's address, and the address
# limit above would pause everyone at once.
FEESYNC_TRUSTED_PROXY_COUNT = env.int("FEESYNC_TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.security.throttle.client_address"

# Staff sessions end after this long without a request, and this long after signing in,
# whichever comes first (config/security/sessions.py). Parents keep Django's session.
FEESYNC_STAFF_IDLE_MINUTES = env.int("FEESYNC_STAFF_IDLE_MINUTES", default=30)
FEESYNC_STAFF_SESSION_HOURS = env.int("FEESYNC_STAFF_SESSION_HOURS", default=10)

# Two-step sign-in for staff with an authenticator app (config/security/two_step.py;
# https://django-otp-official.readthedocs.io/en/stable/overview.html). Optional for every
# staff member; with this on, required of district admins.
FEESYNC_REQUIRE_2FA_FOR_ADMINS = env.bool("FEESYNC_REQUIRE_2FA_FOR_ADMINS", default=False)
# The name the authenticator app shows next to the code.
OTP_TOTP_ISSUER = env("FEESYNC_TOTP_ISSUER", default="FeeSync")
# Nobody, district admins included, sees another person's key or QR code in the admin.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Parent portal ----------------------------------------------------------------------
# A parent locked out by django-axes gets a page that says what happened, until when, and
# that a password reset by e-mail ends it (apps/portal/views.py); the staff site keeps axes'
# plain message. https://django-axes.readthedocs.io/en/latest/4_configuration.html
AXES_LOCKOUT_CALLABLE = "apps.portal.views.lockout_response"
# How long a parent's Fees and Fines body may be served from the cache while nothing about
# their money changed (apps/portal/selectors.py); 0 turns the cache off.
PORTAL_PAGE_CACHE_SECONDS = env.int("PORTAL_PAGE_CACHE_SECONDS", default=60)
# A parent's sign-in asks every vendor for the children's payments before the first page is
# shown, all at once and for at most this long (at most 1 s: a person is waiting); a vendor
# that did not answer in time is asked again in the background and the page says so.
# 0: only in the background.
FEESYNC_PARENT_SIGN_IN_DEADLINE_SECONDS = min(
    env.float("FEESYNC_PARENT_SIGN_IN_DEADLINE_SECONDS", default=1.0), 1.0
)
# Documents staff share with guardians (apps/portal/models.py): never under a public URL.
FEESYNC_DOCUMENTS_ROOT = env.path("FEESYNC_DOCUMENTS_ROOT", default=str(VAR_DIR / "documents"))
# Largest document staff may upload, in bytes.
FEESYNC_DOCUMENT_MAX_BYTES = env.int("FEESYNC_DOCUMENT_MAX_BYTES", default=10 * 1024 * 1024)

# Vendor credentials are encrypted with these Fernet keys, newest first (apps/vendors/crypto.py).
# Without the variable a key derived from SECRET_KEY is used (development only; production
# requires the variable).
FEESYNC_CREDENTIAL_KEYS = env.list("FEESYNC_CREDENTIAL_KEYS", default=[])

# The sync engine (apps/vendors/engine.py).
FEESYNC_DELIVERY_MAX_ATTEMPTS = env.int("FEESYNC_DELIVERY_MAX_ATTEMPTS", default=12)
FEESYNC_DELIVERY_LEASE_SECONDS = env.int("FEESYNC_DELIVERY_LEASE_SECONDS", default=120)
FEESYNC_BACKOFF_BASE_SECONDS = env.float("FEESYNC_BACKOFF_BASE_SECONDS", default=5)
FEESYNC_BACKOFF_CAP_SECONDS = env.float("FEESYNC_BACKOFF_CAP_SECONDS", default=1800)
# Batches one delivery task sends before queueing the next (engine.deliver: vendors take
# turns on the workers).
FEESYNC_DELIVERY_BATCHES_PER_TASK = env.int("FEESYNC_DELIVERY_BATCHES_PER_TASK", default=10)
# Opening a student's fees pulls from every vendor at once; the page waits this long in all,
# however many vendors are slow (each one that did not answer gets a note on the page).
FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS = env.float(
    "FEESYNC_STUDENT_PAGE_DEADLINE_SECONDS", default=2
)

# The ledger (apps/fees). Money a vendor, a file or the partner API has already taken that
# is more than a fee owes becomes the student's credit; with FEESYNC_AUTO_APPLY_CREDIT on, new
# credit is applied at once to the student's oldest open fee (oldest due date, then fee
# date), and credit waiting on the account pays the student's next fee charged one by one
# (not a list assignment's, which are charged set-wise); off, staff apply or refund it from
# the student's page.
FEESYNC_AUTO_APPLY_CREDIT = env.bool("FEESYNC_AUTO_APPLY_CREDIT", default=False)
# The partner API (apps.partner_api): DRF with RFC 9457 problem documents for every error,
# OpenAPI by drf-spectacular (https://drf-spectacular.readthedocs.io/en/latest/settings.html).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.partner_api.auth.PartnerBasicAuthentication",
        "apps.partner_api.auth.ApplicationKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.partner_api.permissions.IsApiUser"],
    "DEFAULT_PARSER_CLASSES": ["apps.partner_api.parsers.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "apps.partner_api.problems.problem_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FeeSync partner API",
    "DESCRIPTION": "Anthology Student's payment-partner contract, served by FeeSync: post "
    "payments (with scheduled-installment auto-adjust), charges and adjustments, apply "
    "payments, and student payment plans. See docs/partner-api.md.",
    "VERSION": "1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    # The OData paths as OData writes them ($metadata, Refunds({key})).
    "PREPROCESSING_HOOKS": ["apps.partner_api.odata.schema.odata_paths"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Part 2's one-letter payment types (C, E, H, I, R, O) beside part 1's words.
    "ENUM_NAME_OVERRIDES": {"PaymentTypeLetterEnum": "apps.accounting.models.PaymentType"},
}
# Responses kept for Idempotency-Key replays at least this long (never less than 24 hours,
# whatever this says); purged hourly by apps.partner_api.tasks.purge_idempotency_keys.
FEESYNC_IDEMPOTENCY_HOURS = env.int("FEESYNC_IDEMPOTENCY_HOURS", default=48)
# How long a gunicorn process trusts partner-API credentials it verified (the key row and
# the API user's permissions; for HTTP Basic, the slow password hash): a revoked key or a
# removed permission counts in every process within this many seconds (0: check every call).
FEESYNC_API_AUTH_CACHE_SECONDS = env.int("FEESYNC_API_AUTH_CACHE_SECONDS", default=30)
# The most rows one OData page holds (`/api/odata/<EntitySet>`): a larger $top, or none,
# is answered in pages linked by @odata.nextLink (a client may ask for smaller ones with
# `Prefer: odata.maxpagesize=N`).
FEESYNC_ODATA_MAX_PAGE_SIZE = env.int("FEESYNC_ODATA_MAX_PAGE_SIZE", default=1000)
# The district requires a term (TermId) on every charge or adjustment a partner posts.
FEESYNC_REQUIRE_TERM_CODES = env.bool("FEESYNC_REQUIRE_TERM_CODES", default=False)
# Fee, due and import-after dates more than this many years before or after today are
# refused as typos.
FEESYNC_DATE_WINDOW_YEARS = env.int("FEESYNC_DATE_WINDOW_YEARS", default=5)

# Demo data password (seed_demo); DESIGN.md command contract.
DEMO_PASSWORD = env("DEMO_PASSWORD", default="feesync-demo")
# The demo partner's application key (seed_demo's `partner-demo`; `make run` prints it):
# "<8-character prefix>.<secret>", stored hashed like any other key.
PARTNER_DEMO_KEY = env("PARTNER_DEMO_KEY", default="demopart.feesync-demo-partner-key")

if not FEESYNC_CREDENTIAL_KEYS:
    import base64
    import hashlib

    FEESYNC_CREDENTIAL_KEYS = [
        base64.urlsafe_b64encode(hashlib.sha256(f"feesync:{SECRET_KEY}".encode()).digest()).decode()
    ]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# The daily close (apps.accounting.services.close): where each released business date's
# general-ledger export file is written (atomically: a temporary file renamed into place)
# and kept, and the GL account of money on no billing code and no fund source (payments to
# and refunds from the student's credit).
FEESYNC_GL_EXPORT_DIR = env.path("FEESYNC_GL_EXPORT_DIR", default=str(VAR_DIR / "gl-exports"))
FEESYNC_GL_UNAPPLIED_ACCOUNT = env("FEESYNC_GL_UNAPPLIED_ACCOUNT", default="UNAPPLIED-CREDIT")
