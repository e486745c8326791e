"""The HTML report in a real browser: headless Chromium renders it to a PNG, and the
screenshot must show the charts (their series colours in chart-sized regions, in order).

A control run of the same page with its SVG removed must show none of those colours, so
the check cannot pass on a page whose charts do not render. Skipped, with the reason
printed, when no Chromium binary is installed (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reports import render_html
from reports.render_html import (
    ANOMALY_COLOR,
    COST_COLOR,
    ENERGY_COLOR,
    PROFILE_AREA_COLOR,
)
from tests.reports.factory import device_windows, report_data

WIDTH, HEIGHT = 1280, 2000
TOLERANCE = 12  # per channel: colour management and anti-aliasing may shift solid fills
MIN_CHART_PIXELS = 4000


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium or chromium-browser on PATH (apt-get install chromium)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return found


def screenshot(html: bytes, folder: Path) -> np.ndarray:  # type: ignore[type-arg]
    binary = chromium_binary()
    page = folder / "report.html"
    page.write_bytes(html)
    png = folder / "report.png"
    command = [
        binary,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={folder / 'profile'}",
        f"--screenshot={png}",
        f"--window-size={WIDTH},{HEIGHT}",
        page.as_uri(),
    ]
    completed = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert completed.returncode == 0 and png.exists(), (
        f"chromium failed ({completed.returncode}): {completed.stderr.decode()[-2000:]}"
    )
    with Image.open(png) as image:
        assert image.size == (WIDTH, HEIGHT)
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def colour_mask(pixels: np.ndarray, colour: str) -> np.ndarray:  # type: ignore[type-arg]
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return np.asarray((np.abs(pixels - target) <= TOLERANCE).all(axis=2))


def region(mask: np.ndarray) -> tuple[int, int, int, int]:  # type: ignore[type-arg]
    """Bounding box (left, top, right, bottom) of the mask's pixels."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.fixture
def report_html() -> bytes:
    windows = []
    windows += device_windows("meter-a", date(2026, 3, 1), 14, "Europe/Berlin", flag_day=4)
    windows += device_windows(
        "meter-b", date(2026, 3, 1), 14, "Europe/Berlin", scale=2.0, flag_hour=(8, 18)
    )
    windows += device_windows("meter-c", date(2026, 3, 1), 10, "Europe/Berlin", scale=0.5)
    return render_html(report_data(windows, "2026-03-01", "2026-03-15", "Europe/Berlin"))


def test_screenshot_shows_the_charts(report_html: bytes, tmp_path: Path) -> None:
    pixels = screenshot(report_html, tmp_path)
    white = colour_mask(pixels, "#ffffff")
    assert white.mean() < 0.97, "the screenshot is (almost) blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "the screenshot has no detail"

    regions = {}
    for name, colour in (
        ("daily energy bars", ENERGY_COLOR),
        ("hourly profile area", PROFILE_AREA_COLOR),
        ("daily cost bars", COST_COLOR),
    ):
        mask = colour_mask(pixels, colour)
        count = int(mask.sum())
        assert count >= MIN_CHART_PIXELS, f"{name}: only {count} pixels of {colour}"
        left, top, right, bottom = region(mask)
        assert right - left >= 400, f"{name} span only {right - left} px wide"
        assert bottom - top >= 80, f"{name} span only {bottom - top} px high"
        regions[name] = (left, top, right, bottom)
    flagged = int(colour_mask(pixels, ANOMALY_COLOR).sum())
    assert flagged >= 200, f"flagged days: only {flagged} pixels of {ANOMALY_COLOR}"
    # The overview shows energy, then the profile, then cost, one below the other.
    tops = [
        regions[name][1] for name in ("daily energy bars", "hourly profile area", "daily cost bars")
    ]
    assert tops == sorted(tops), f"charts out of order: {regions}"


def test_control_without_svg_shows_no_chart_colours(report_html: bytes, tmp_path: Path) -> None:
    without_charts = re.sub(rb"<svg\b.*?</svg>", b"", report_html, flags=re.S)
    assert without_charts != report_html
    pixels = screenshot(without_charts, tmp_path)
    for colour in (ENERGY_COLOR, PROFILE_AREA_COLOR, COST_COLOR):
        assert int(colour_mask(pixels, colour).sum()) < 50, colour
