"""What every browser test needs: Debian's Chromium driven by Playwright for Python.

Shared by tests/browser (staff screens) and usable by tests/portal. Where the browser is
missing the tests are skipped, except under CI_REQUIRE_BROWSER=1 (CI sets it), where they
fail: a CI run must never pass by skipping them.

    from tests.browser_support import browser_missing, require_browser, launch_chromium
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("FEESYNC_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "tests" / "artifacts"
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: axe-core impacts that fail a test.
BLOCKING = ("serious", "critical")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def browser_missing(*extra_files: Path) -> str | None:
    """Why the browser tests cannot run here, or None when they can. `extra_files` are
    further requirements (the portal's axe-core, for instance)."""
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    for path in extra_files:
        if not path.exists():
            return f"{path} is missing"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install '.[dev]')"
    return None


def require_browser(*extra_files: Path) -> None:
    """Skip the calling test (or fail it, under CI_REQUIRE_BROWSER=1) when the browser is
    missing."""
    missing = browser_missing(*extra_files)
    if missing is None:
        return
    if os.environ.get("CI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CI_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
    pytest.skip(missing)


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """Chromium under Playwright's sync API. Playwright keeps an asyncio loop in this
    thread, which Django's async-safety check takes for an async context; the caller must
    set DJANGO_ALLOW_ASYNC_UNSAFE (the fixtures do, with monkeypatch) since nothing here
    runs concurrently with it: the live server answers from its own thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def axe_violations(page: Any, context: str = "body") -> list[dict[str, Any]]:
    """Serious and critical axe-core violations inside `context` (a CSS selector) of the
    page as it is. Needs AXE_JS (`require_browser(AXE_JS)` first)."""
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate(
        "async (context) => await axe.run(context, {resultTypes: ['violations']})", context
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]
