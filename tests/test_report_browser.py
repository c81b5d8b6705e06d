"""The HTML report in a real browser: headless Chromium (Debian ``chromium`` + ``chromium-driver``, which
``.ci/run`` installs) opens it from disk with no console errors, the leaderboard renders (a non-blank
screenshot), a transcript link from the leaderboard resolves, and hostile transcript text is shown as
text, never run. A machine without Chromium fails this test unless LMRL_SKIP_BROWSER=1 says to skip."""

from __future__ import annotations

import io
import os
import shutil

import pytest
from test_reports import HOSTILE, episode, make_run

from lmrl.reports.report import write_report

CHROMIUM = os.environ.get("LMRL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = os.environ.get("LMRL_CHROMEDRIVER") or shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if os.environ.get("LMRL_SKIP_BROWSER") == "1":
        pytest.skip("LMRL_SKIP_BROWSER=1")
    if not (CHROMIUM and DRIVER):
        pytest.fail(
            "headless Chromium is needed: apt-get install chromium chromium-driver (or LMRL_SKIP_BROWSER=1)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    episodes = [
        episode("maze-fo", "scripted/a", i, [-1.0] * (8 + i), success=True, text=HOSTILE) for i in range(30)
    ]
    episodes += [episode("maze-fo", "scripted/b", i, [-1.0] * 30, truncated=True) for i in range(30)]
    episodes += [episode("wordle", "scripted/a", i, [-1.0, -1.0], success=True) for i in range(5)]
    return write_report([make_run(root / "run", episodes)], root / "report", per_page=10)


def _errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_report_opens_without_errors_and_links_to_transcripts(browser, report):
    from PIL import Image
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    browser.get(report.index.as_uri())
    assert browser.title == "lmrl report"
    assert _errors(browser) == []
    leaderboard = browser.find_element(By.CSS_SELECTOR, "h2#leaderboard + p + table")
    image = Image.open(io.BytesIO(leaderboard.screenshot_as_png)).convert("L")
    low, high = image.getextrema()
    assert image.size[0] > 200 and high - low > 100  # text and borders on white, not a blank box
    assert "paper: ILQL" in leaderboard.text and "★" in leaderboard.text

    link = leaderboard.find_element(By.CSS_SELECTOR, "td.best a")
    link.click()
    assert "maze-fo" in browser.title and "page 1" in browser.title
    assert _errors(browser) == []
    sections = browser.find_elements(By.CSS_SELECTOR, "section.episode")
    assert len(sections) == 10  # --per-page
    # the hostile output is on the page as text; nothing ran, nothing was injected
    assert "<script>alert('x')</script></textarea>" in sections[0].text
    assert browser.find_elements(By.CSS_SELECTOR, "section.episode script, section.episode img") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check
    browser.find_element(By.LINK_TEXT, "next →").click()
    assert "page 2 of 3" in browser.find_element(By.TAG_NAME, "nav").text
