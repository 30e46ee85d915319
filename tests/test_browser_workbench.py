"""The curator's workbench in real headless Chromium: from "which were rejected and why" to a
task's whole story in two clicks, sections that stay open when the reader clicks elsewhere,
fifty samples reviewed with the keyboard alone, bulk verdicts, and the charts. Screenshots go
to $MEDSTORE_TEST_ARTIFACTS (default tests/artifacts/), like tests/test_browser.py's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from .teachers_serve import (
    QUEUE_SAMPLES,
    ServeProcess,
    build_queue_warehouse,
    build_warehouse,
    copy_warehouse,
)
from .test_browser import TOKEN, artifacts, browser, wait_for  # noqa: F401 (fixtures)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow
REVIEWED_WITH_KEYS = 50


@pytest.fixture(scope="module")
def scripted(tmp_path_factory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("workbench-browser")
    db = copy_warehouse(build_warehouse(folder), folder / "served.db")
    with ServeProcess(db, "--review-token", TOKEN) as process:
        yield process


@pytest.fixture(scope="module")
def queue_server(tmp_path_factory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("queue-browser")
    db = copy_warehouse(build_queue_warehouse(folder), folder / "served.db")
    with ServeProcess(db, "--review-token", TOKEN) as process:
        yield process


def shot(browser, artifacts, name: str, full: bool = False) -> None:  # noqa: F811
    if full:
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1280, min(height, 5000))
    assert browser.save_screenshot(str(artifacts / f"{name}.png"))
    browser.set_window_size(1280, 1100)


# A key press navigates: an element read while the next page replaces the old one is stale for
# a moment. Waits look again rather than fail on that.
MOVING_PAGE = (StaleElementReferenceException, NoSuchElementException, WebDriverException)


def settled(driver) -> WebDriverWait:
    return WebDriverWait(driver, 15, ignored_exceptions=MOVING_PAGE)


def body_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def log_in(driver, server: ServeProcess, next_path: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{server.base_url}/-/medstore/login?{urlencode({'next': next_path})}")
    driver.find_element(By.ID, "reviewer").send_keys("dr-ana")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login-submit").click()


def test_two_clicks_from_the_rejections_to_a_story(browser, scripted, artifacts) -> None:  # noqa: F811
    browser.delete_all_cookies()
    browser.get(scripted.base_url + "/served/task_outcomes")
    facet = wait_for(browser, "#facet-state")
    shot(browser, artifacts, "10-task-outcomes")
    facet.find_element(By.LINK_TEXT, "rejected").click()  # click 1
    settled(browser).until(lambda driver: "state=rejected" in driver.current_url)
    kinds = browser.find_element(By.CSS_SELECTOR, "#facet-failure_kind").text
    assert "expert: differential_diagnosis.icd10_code" in kinds
    shot(browser, artifacts, "11-task-outcomes-rejected")
    browser.find_element(By.CSS_SELECTOR, "a.medstore-task").click()  # click 2
    outcome = wait_for(browser, "#outcome")
    assert outcome.get_attribute("data-state") == "rejected"
    assert "expert: differential_diagnosis.icd10_code" in outcome.text
    assert "'Z99.999' is not an ICD-10-CM code" in outcome.text
    events = browser.find_elements(By.CSS_SELECTOR, "li.medstore-event")
    kinds = [event.get_attribute("data-event-type") for event in events]
    assert kinds[0] == "task_started" and kinds[-1] == "sample_rejected"
    assert kinds.count("repair_requested") == 2
    shot(browser, artifacts, "12-task-page-rejected", full=True)


def test_open_sections_stay_open_and_menus_still_close(browser, scripted, artifacts) -> None:  # noqa: F811
    browser.delete_all_cookies()
    browser.get(scripted.base_url + "/served/samples?task_key=consult:case-01:v1")
    browser.find_element(By.CSS_SELECTOR, "a.medstore-sample").click()
    prompt = wait_for(browser, "details.medstore-message:not([open])")  # a system prompt
    prompt.find_element(By.TAG_NAME, "summary").click()
    json_view = browser.find_element(By.CSS_SELECTOR, "details.medstore-sample-json")
    json_view.find_element(By.TAG_NAME, "summary").click()
    browser.find_element(By.TAG_NAME, "h1").click()  # a click anywhere else
    assert prompt.get_attribute("open") is not None and json_view.get_attribute("open") is not None
    menu = browser.find_element(By.CSS_SELECTOR, "details.nav-menu")
    menu.find_element(By.TAG_NAME, "summary").click()
    assert menu.get_attribute("open") is not None
    browser.find_element(By.TAG_NAME, "h1").click()
    assert menu.get_attribute("open") is None  # Datasette's menu still closes on outside clicks
    assert prompt.get_attribute("open") is not None
    chat = browser.find_elements(By.CSS_SELECTOR, "#sample .medstore-turn-patient")
    assert chat and "A pressing pain in my chest" in chat[0].text
    shot(browser, artifacts, "13-sample-page-chat")


def position(driver) -> tuple[str, str]:
    sample = driver.find_element(By.CSS_SELECTOR, "#sample").get_attribute("data-sample-id")
    return sample, driver.find_element(By.ID, "progress").text


def press(driver, key: str) -> None:
    """A key pressed on the page (not in a field), as a reviewer presses it."""
    webdriver.ActionChains(driver).send_keys(key).perform()


def test_fifty_samples_reviewed_with_the_keyboard_alone(browser, queue_server, artifacts) -> None:  # noqa: F811
    log_in(browser, queue_server, "/-/medstore/review/item?state=unreviewed")
    wait_for(browser, "#verdict-form")
    assert f"0 of {QUEUE_SAMPLES} reviewed" in body_text(browser)
    shot(browser, artifacts, "14-review-item")
    # Typed into the note, the shortcut letters are text; Esc leaves the note.
    note = browser.find_element(By.ID, "review-note")
    note.click()
    note.send_keys("a r n p")
    before = position(browser)
    assert position(browser) == before and note.get_attribute("value") == "a r n p"
    note.send_keys(Keys.ESCAPE)
    note.clear()
    browser.find_element(By.TAG_NAME, "h1").click()
    seen = []
    for number in range(REVIEWED_WITH_KEYS):
        current = position(browser)
        seen.append(current[0])
        press(browser, "a")
        settled(browser).until(
            lambda driver, current=current: (
                driver.find_elements(By.ID, "progress") and position(driver)[1] != current[1]
            )
        )
        settled(browser).until(
            lambda driver, n=number: f"{n + 1} of {QUEUE_SAMPLES} reviewed" in body_text(driver)
        )
    assert len(set(seen)) == REVIEWED_WITH_KEYS
    assert f"Sample 1 of {QUEUE_SAMPLES - REVIEWED_WITH_KEYS} in this queue" in body_text(browser)
    shot(browser, artifacts, "15-after-fifty-accepts")
    # r rejects; n and p step without a verdict.
    rejected = position(browser)[0]
    press(browser, "r")
    settled(browser).until(lambda driver: position(driver)[0] != rejected)
    ahead = position(browser)[0]
    press(browser, "n")
    settled(browser).until(lambda driver: position(driver)[0] != ahead)
    press(browser, "p")
    settled(browser).until(lambda driver: position(driver)[0] == ahead)
    assert "51 of 55 reviewed" in body_text(browser) and "1 rejected" in body_text(browser)
    browser.get(queue_server.base_url + "/served/review_queue?review_state=rejected")
    assert rejected in browser.find_element(By.CSS_SELECTOR, "table.rows-and-columns").text


def test_bulk_verdict_on_a_filtered_page(browser, queue_server, artifacts) -> None:  # noqa: F811
    log_in(browser, queue_server, "/-/medstore/review?state=unreviewed&size=3")
    wait_for(browser, "#bulk-form")
    match = re.search(r"(\d+) samples match", body_text(browser))
    left = int(match.group(1))
    assert left >= 3 and "Page 1 of" in body_text(browser)
    browser.find_element(By.ID, "check-all").click()
    assert all(
        box.is_selected() for box in browser.find_elements(By.CSS_SELECTOR, ".medstore-pick")
    )
    browser.find_element(By.ID, "bulk-note").send_keys("spot-checked as a batch")
    shot(browser, artifacts, "16-queue-bulk")
    browser.find_element(By.ID, "bulk-reject").click()
    settled(browser).until(lambda driver: "Recorded reject" in body_text(driver))
    assert "Recorded reject for 3 samples as dr-ana" in body_text(browser)
    assert f"{left - 3} samples match" in body_text(browser)
    shot(browser, artifacts, "17-queue-after-bulk")


def test_charts_read_as_people_write_numbers(browser, scripted, artifacts) -> None:  # noqa: F811
    browser.get(scripted.base_url + "/-/medstore/charts")
    text = body_text(browser)
    for title in ("Accepted and rejected over time", "Tokens and cost per run",
                  "Tokens and cost per stage", "Label balance", "Judge scores"):  # fmt: skip
        assert title in text
    svg = browser.find_element(By.CSS_SELECTOR, "#chart-runs svg").get_attribute("innerHTML")
    assert re.search(r"\d(\.\d)?k in \+", svg) and "e+0" not in svg
    shot(browser, artifacts, "18-charts", full=True)
