"""Browser tests: pytest-playwright's `page` on Debian's Chromium, against `live_server`.

Playwright never downloads a browser here; `scripts/install-chromium` installs Debian's.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the sync API runs an event loop

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in containers; the tests only open our own live server
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def chromium_path():
    """Skip the browser tests where Chromium is missing, except on CI, where that is a failure."""
    if not CHROMIUM.exists():
        reason = f"Debian's Chromium is not installed at {CHROMIUM}; run scripts/install-chromium"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, chromium_path):
    """pytest-playwright's launch options, pointed at Debian's Chromium."""
    return {
        **browser_type_launch_args,
        "executable_path": str(chromium_path),
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture
def artifacts_dir():
    """Screenshots land in test-artifacts/ (git-ignored) for people and CI to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
