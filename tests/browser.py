"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, for page tests.

The flags: headless without sandbox (tests may run as root), no GPU, and no background traffic (QUIC,
component updates, sync, first-run): on machines without a network, Chromium otherwise stalls on
refused connections. Autoplay is allowed so a test can press play without a real user gesture; a fresh
profile folder per browser.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]


def require_chromium() -> None:
    """Skip the test, saying why, where Chromium or its driver is not installed."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip("Chromium is absent: apt-get install chromium chromium-driver (scripts/install.sh does)")
    pytest.importorskip("selenium")


@contextmanager
def chromium(width: int = 1280, height: int = 900, downloads: Path | None = None) -> Iterator[Any]:
    """A Selenium ``webdriver.Chrome`` on headless Chromium with a fresh profile; quit on exit. ``downloads``:
    the folder a download lands in, without asking (else downloads are Chromium's default)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    profile = tempfile.mkdtemp(prefix="dgsearch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for page_errors
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if downloads is not None:  # headless Chromium takes the folder from the DevTools protocol
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def downloaded(folder: Path, timeout: float = 30.0) -> list[Path]:
    """The downloads in ``folder`` once none is still arriving (Chromium writes ``NAME.crdownload`` until one is
    done), sorted; AssertionError when nothing arrives within ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(folder.iterdir())
        if files and not any(p.name.endswith(".crdownload") for p in files):
            return files
        time.sleep(0.1)
    raise AssertionError(f"nothing downloaded into {folder}: {sorted(folder.iterdir())}")


def page_errors(driver: Any) -> list[str]:
    """The page's console errors and failed loads so far (Chromium's "SEVERE" entries), for a failing test's
    message; [] where the driver keeps no log."""
    try:
        return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    except Exception:  # noqa: BLE001 - a diagnostic only: never the reason a test fails
        return []
