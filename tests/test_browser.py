"""The frontend in real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
selenium): browse from the index to a facet, read a provenance page, log in as a reviewer and
reject a sample, and see an unauthenticated write refused. Screenshots of each page are saved
under $MEDSTORE_TEST_ARTIFACTS (default tests/artifacts/, git-ignored).

Install the browser with scripts/install-browser.sh; without it these tests are skipped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO
from .teachers_serve import ServeProcess, build_warehouse, copy_warehouse

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow

TOKEN = "browser-review-token"
STAGES = ["profile", "dialogue", "reasoning", "expert"]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
    "--window-size=1280,1100",
]


def browser_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("MEDSTORE_TEST_ARTIFACTS", REPO / "tests" / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator:
    paths = browser_paths()
    if paths is None:
        pytest.skip("no chromium/chromedriver: run scripts/install-browser.sh")
    chromium, driver_path = paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("browser")
    db = copy_warehouse(build_warehouse(folder), folder / "served.db")
    with ServeProcess(db, "--review-token", TOKEN) as process:
        yield process


@pytest.fixture
def browse(browser, server, artifacts):
    """Open a path of the server; ``browse.shot(name)`` saves a screenshot of the page."""
    browser.delete_all_cookies()

    class Browse:
        def __call__(self, path: str) -> None:
            browser.get(server.base_url + path)

        def shot(self, name: str) -> None:
            assert browser.save_screenshot(str(artifacts / f"{name}.png"))

    return Browse()


def wait_for(browser, css: str):
    return WebDriverWait(browser, 15).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def samples_table_ids(browser, browse) -> set[str]:
    browse("/served/samples?_size=max")
    return {link.text for link in browser.find_elements(By.CSS_SELECTOR, "a.medstore-sample")}


def test_index_then_a_facet(browser, browse) -> None:
    browse("/")
    assert "medstore warehouse" in browser.title
    browse.shot("01-index")
    browser.find_element(By.LINK_TEXT, "served").click()
    wait_for(browser, "h1")
    browser.find_element(By.LINK_TEXT, "samples").click()
    facet = wait_for(browser, "#facet-label")
    values = {link.text: link for link in facet.find_elements(By.CSS_SELECTOR, "li a")}
    assert set(values) == {"high", "moderate", "low"}
    values["high"].click()
    WebDriverWait(browser, 15).until(lambda driver: "label=high" in driver.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.rows-and-columns tbody tr")
    assert len(rows) == 2
    assert {row.find_element(By.CSS_SELECTOR, "td.col-label").text for row in rows} == {"high"}
    browse.shot("02-samples-facet-label-high")


def test_provenance_page_shows_every_stage(browser, browse) -> None:
    browse("/served/samples?task_key=consult:case-01:v1")
    browser.find_element(By.CSS_SELECTOR, "a.medstore-sample").click()
    wait_for(browser, "ol.medstore-timeline")
    stage_rows = browser.find_elements(By.CSS_SELECTOR, "table.medstore-stages tbody tr")
    assert [row.get_attribute("data-stage") for row in stage_rows] == STAGES
    events = browser.find_elements(By.CSS_SELECTOR, "li.medstore-event")
    requests = [
        e.get_attribute("data-stage")
        for e in events
        if e.get_attribute("data-event-type") == "llm_request"
    ]
    assert requests == [*STAGES, "expert"]  # the expert stage was repaired once
    kinds = [e.get_attribute("data-event-type") for e in events]
    assert kinds[0] == "task_started" and kinds[-1] == "sample_accepted"
    for kind in ("llm_response", "parse_failed", "repair_requested", "validation_verdict"):
        assert kind in kinds
    assert "In the dataset." in browser.find_element(By.ID, "status").text
    browse.shot("03-provenance")


def test_unauthenticated_write_is_refused(browser, browse) -> None:
    target = sorted(samples_table_ids(browser, browse))[0]
    browse(f"/-/medstore/sample/{target}")
    assert not browser.find_elements(By.ID, "review-submit")
    assert browser.find_element(By.ID, "review-login").is_displayed()
    # A hand-made form with a valid CSRF token but no reviewer login: permission, not CSRF,
    # is what refuses it.
    browse("/-/medstore/login")
    browser.execute_script(
        """
        const form = document.createElement("form");
        form.method = "post";
        form.action = arguments[0];
        const fields = {
            csrftoken: document.querySelector("input[name=csrftoken]").value,
            verdict: "reject",
            note: "anonymous",
        };
        for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement("input");
            input.type = "hidden";
            input.name = name;
            input.value = value;
            form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
        """,
        f"/-/medstore/sample/{target}/review",
    )
    WebDriverWait(browser, 15).until(lambda driver: "/review" in driver.current_url)
    assert "needs a reviewer login" in browser.find_element(By.TAG_NAME, "body").text
    browse.shot("04-unauthenticated-write-refused")
    assert target in samples_table_ids(browser, browse)


def test_reviewer_logs_in_and_rejects_a_sample(browser, browse) -> None:
    target = sorted(samples_table_ids(browser, browse))[1]
    browse(f"/-/medstore/sample/{target}")
    browser.find_element(By.ID, "review-login").click()
    wait_for(browser, "#login-submit")
    browser.find_element(By.ID, "reviewer").send_keys("dr-ana")
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "login-submit").click()
    assert "not the review token" in wait_for(browser, "#login-error").text
    browser.find_element(By.ID, "reviewer").send_keys("dr-ana")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login-submit").click()
    note = wait_for(browser, "#review-note")  # back on the sample page, now with the form
    note.send_keys("the dialogue contradicts the profile's age")
    browser.find_element(By.CSS_SELECTOR, "input[name=verdict][value=reject]").click()
    browse.shot("05-review-form")
    browser.find_element(By.ID, "review-submit").click()
    WebDriverWait(browser, 15).until(
        lambda driver: "Recorded your verdict" in driver.find_element(By.TAG_NAME, "body").text
    )
    status = browser.find_element(By.ID, "status").text
    assert "Not in the dataset: rejected by reviewer dr-ana" in status
    assert "the dialogue contradicts" in status
    browse.shot("06-after-reject")
    assert target not in samples_table_ids(browser, browse)
    browse("/served/rejected_by_reviewers")
    assert target in browser.find_element(By.CSS_SELECTOR, "table.rows-and-columns").text
    browse.shot("07-rejected-by-reviewers")


def test_charts_page_draws(browser, browse) -> None:
    browse("/-/medstore/charts")
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.medstore-chart-svg")
    assert len(charts) == 6 and all(chart.size["height"] > 20 for chart in charts)
    browse.shot("08-charts")
