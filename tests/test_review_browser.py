"""The review page of ``tad review`` and ``tad detect --html`` in a real browser: Debian's chromium, headless,
driven by Selenium through Debian's chromium-driver (``.ci/run`` installs both). Without them these tests fail
with the command that installs them: they are never skipped."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.io.events import EventFormat, video_id

from review_case import HOSTILE_LABEL, write_review_case

runner = CliRunner()
BROWSERS = ("chromium", "chromium-browser")
INSTALL = "apt-get install -y chromium chromium-driver (.ci/run does), and pip install -e '.[dev]' for selenium"
WINDOW = (1280, 800)
WAIT_S = 20


@pytest.fixture(scope="module")
def browser():
    driver = start_browser()
    yield driver
    driver.quit()


def start_browser():
    """Headless chromium under Selenium; without them, a failure that says how to install them (never a skip)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"the review page tests need selenium: {INSTALL}")
    binary = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    driver_binary = shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        pytest.fail(f"the review page tests need a real browser, found chromium={binary} chromedriver={driver_binary}: "
                    f"{INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_binary), options=options)


def test_without_chromium_the_tests_fail_saying_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium, no chromedriver
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        start_browser()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return write_review_case(tmp_path_factory.mktemp("review"))


def write_page(case, format: str, *extra: str) -> Path:
    page = case.annotations.parent.parent / "pages" / f"{format}.html"
    videos = case.videos[:1] if format == EventFormat.SRT else case.videos
    # activitynet and srt files name no video file: --video gives them
    given = [arg for video in videos for arg in ("--video", video.video)] if format in ("activitynet", "srt") else []
    result = runner.invoke(app, ["review", str(case.events[format]), "--annotations", str(case.annotations),
                                 "--out", str(page), *given, *extra])
    assert result.exit_code == 0, result.output
    return page


def open_page(browser, page: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script(
        "return document.readyState === 'complete' && document.getElementById('playhead') !== null"))


def wait_for_video(browser) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script(
        "const v = document.getElementById('video'); return v.readyState >= 1 || v.error !== null"))
    assert browser.execute_script("return document.getElementById('video').error") is None


def console_errors(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def drawn_events(browser, kind: str) -> list[tuple]:
    """(label, start, end, score, shown) of each drawn element of that kind, read from its data- attributes."""
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-kind=\"' + arguments[0] + '\"]')).map(e => "
        "[e.dataset.label, e.dataset.start, e.dataset.end, e.dataset.score, e.getClientRects().length > 0]);", kind)
    return [(label, float(start), float(end), float(score), shown) for label, start, end, score, shown in rows]


def choose_video(browser, index: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "video-select")).select_by_index(index)


def set_threshold(browser, value: float) -> None:
    browser.execute_script("const s = document.getElementById('threshold'); s.value = arguments[0]; "
                           "s.dispatchEvent(new Event('input'));", value)


def current_time(browser) -> float:
    return browser.execute_script("return document.getElementById('video').currentTime")


@pytest.mark.parametrize("format", [f.value for f in EventFormat])
def test_the_page_draws_the_events_of_every_format_and_plays_each_video(browser, case, format):
    page = write_page(case, format)
    open_page(browser, page)
    videos = case.videos[:1] if format == EventFormat.SRT else case.videos
    for index, video in enumerate(videos):
        if len(videos) > 1:
            choose_video(browser, index)
        wait_for_video(browser)
        src = browser.execute_script("return document.getElementById('video').getAttribute('src')")
        assert src == quote(Path(os.path.relpath(video.video, page.parent)).as_posix())  # linked, relative
        assert browser.execute_script("return document.getElementById('video').duration") == pytest.approx(
            video.duration, abs=0.2)
        predictions = drawn_events(browser, "prediction")
        assert sorted(p[:4] for p in predictions) == sorted((e.label, e.start, e.end, e.score) for e in video.events)
        truth = drawn_events(browser, "truth")
        assert sorted(t[:4] for t in truth) == sorted((e.label, e.start, e.end, 1.0) for e in case.truth[video_id(video.video)])
        assert all(shown for *_, shown in predictions + truth)  # the slider starts at 0
    assert console_errors(browser) == []


def test_the_slider_hides_predictions_below_the_threshold_and_the_class_filter_hides_rows(browser, case):
    open_page(browser, write_page(case, "json"))
    set_threshold(browser, 0.5)
    predictions = drawn_events(browser, "prediction")
    assert {score >= 0.5 for *_, score, _ in predictions} == {True, False}  # the case has both
    assert all(shown == (score >= 0.5) for *_, score, shown in predictions)
    assert all(shown for *_, shown in drawn_events(browser, "truth"))  # ground truth has no score to filter
    assert browser.find_element("id", "threshold-value").text == "0.50"

    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, f'#class-list input[value="{HOSTILE_LABEL}"]').click()
    hidden = [p for p in drawn_events(browser, "prediction") if p[0] == HOSTILE_LABEL]
    assert hidden and not any(shown for *_, shown in hidden)
    assert console_errors(browser) == []


def test_clicking_an_event_seeks_the_video_and_keys_step_through_events(browser, case):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, write_page(case, "json"))
    wait_for_video(browser)
    events = sorted(case.videos[0].events, key=lambda e: (e.start, -e.score))
    best = max(events, key=lambda e: e.score)  # drawn on top of its row
    element = next(e for e in browser.find_elements(By.CSS_SELECTOR, '[data-kind="prediction"]')
                   if float(e.get_attribute("data-score")) == best.score)
    element.click()
    assert current_time(browser) == pytest.approx(best.start, abs=1e-6)
    assert "selected" in element.get_attribute("class")
    playhead_x = browser.execute_script("return document.getElementById('playhead').getBoundingClientRect().left")
    assert playhead_x == pytest.approx(element.rect["x"], abs=2)  # the playhead stands at the event's start

    following = next(e for e in events if e.start > best.start + 0.05)
    ActionChains(browser).send_keys("n").perform()
    WebDriverWait(browser, WAIT_S).until(lambda b: abs(current_time(b) - following.start) < 1e-6)
    ActionChains(browser).send_keys("p").perform()
    WebDriverWait(browser, WAIT_S).until(lambda b: abs(current_time(b) - best.start) < 1e-6)
    ActionChains(browser).send_keys(" ").perform()  # play
    WebDriverWait(browser, WAIT_S).until(lambda b: current_time(b) > best.start + 0.2)
    ActionChains(browser).send_keys(" ").perform()  # pause
    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script("return document.getElementById('video').paused"))
    assert console_errors(browser) == []


def test_a_screenshot_of_the_page_is_not_blank(browser, case, tmp_path):
    open_page(browser, write_page(case, "json"))
    wait_for_video(browser)
    browser.execute_script("document.getElementById('video').currentTime = arguments[0]", case.truth[
        video_id(case.videos[0].video)][0].start + 0.5)
    picture = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    (tmp_path / "review.png").write_bytes(browser.get_screenshot_as_png())  # to look at with --basetemp
    pixels = np.asarray(picture, dtype=np.float64)
    assert pixels.std() > 20  # text, boxes and the video frame, not one flat colour
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    prediction_blue = (np.abs(pixels - (31, 119, 180)).sum(axis=2) < 30).sum()
    truth_orange = (np.abs(pixels - (235, 125, 20)).sum(axis=2) < 40).sum()
    assert prediction_blue > 100 and truth_orange > 100  # the timeline's boxes are painted


def test_detect_html_writes_the_page_of_its_events(browser, trained_run, small_synthetic, tmp_path):
    from tadcli.data.prepared import load_prepared_dataset

    videos = [str(v.path) for v in load_prepared_dataset(small_synthetic).videos.values() if v.subset == "test"]
    events_file, page = tmp_path / "events.json", tmp_path / "pages" / "detect.html"
    result = runner.invoke(app, ["detect", *videos, "--run", str(trained_run), "--out", str(events_file), "--html",
                                 str(page), "--annotations", str(small_synthetic / "manifest.json"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"wrote {page}" in result.output
    content = json.loads(events_file.read_text())
    open_page(browser, page)
    for index, entry in enumerate(content["videos"]):
        choose_video(browser, index)
        wait_for_video(browser)
        drawn = sorted(p[:4] for p in drawn_events(browser, "prediction"))
        assert drawn == sorted((e["label"], e["start"], e["end"], e["score"]) for e in entry["events"])
        assert drawn_events(browser, "truth")  # the manifest's instances of the video
    assert console_errors(browser) == []
