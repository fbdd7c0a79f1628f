"""Development and the demo (`make run`): SQLite and the filesystem broker unless the
environment says otherwise.

DEBUG is off unless a developer asks for it (DJANGO_DEBUG=1): the demo is used by people
playing parents and clerks, who must get the friendly 404/500 pages (templates/404.html,
500.html), never Django's debug page with settings and tracebacks. With DEBUG off
`runserver` serves no static files, so WhiteNoise (already in MIDDLEWARE) serves them
straight from the apps' and project's static folders, without a collectstatic step.
"""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=False)
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
WHITENOISE_USE_FINDERS = True
# Re-reading the folders on every request is for a developer editing CSS (DJANGO_DEBUG=1).
WHITENOISE_AUTOREFRESH = DEBUG
