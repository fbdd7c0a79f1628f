"""`make run` never shows a parent Django's debug page (issue 11 item 16): the demo's web
process (`manage.py runserver` with config.settings.local, as the Procfile starts it) runs
with DEBUG off unless a developer sets DJANGO_DEBUG, answers a missing page with the
friendly 404 page, and still serves the static files (WhiteNoise, from the finders)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.test import RequestFactory
from django.views.defaults import server_error

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def demo_web(tmp_path) -> Iterator[str]:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_DEBUG", "DATABASE_URL"} and not k.startswith("PYTEST")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            # Nothing here needs a table: a missing page and a static file.
            "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        }
    )
    proc = subprocess.Popen(  # noqa: S603 - our own manage.py, as the Procfile runs it
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/static/portal/portal.css", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_demo_shows_the_friendly_404_and_still_serves_static_files(demo_web):
    missing = requests.get(f"{demo_web}/portal/no-such-page/", timeout=10)
    assert missing.status_code == 404
    assert "We could not find that page" in missing.text
    assert "Django tried these URL patterns" not in missing.text
    assert "DEBUG = True" not in missing.text

    css = requests.get(f"{demo_web}/static/portal/portal.css", timeout=10)
    assert css.status_code == 200 and "--brand" in css.text


def test_a_server_error_shows_the_friendly_500_page():
    response = server_error(RequestFactory().get("/portal/"))
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in page
    assert 'href="/portal/"' in page


def test_a_parent_asking_for_a_page_that_is_not_theirs_gets_the_friendly_404(db, client):
    from tests.factories import GuardianFactory

    guardian = GuardianFactory()
    client.force_login(guardian.user)
    response = client.get("/portal/students/999999/")
    assert response.status_code == 404
    assert "We could not find that page" in response.content.decode()
