"""The dashboard at /ui in a real headless Chromium, against a real API and worker: every page
renders what the API holds, a training job's curve grows while it trains, and a second
project's key sees none of the first project's data. A screenshot of each page is written
under the test's tmp dir (`screenshots/`)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from service.auth.service import create_project
from service.core.database import create_db_engine, create_session_factory, transaction
from service.core.settings import Settings
from tests.reliability.servers import Service, running_service
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_ui_" + "u" * 24
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    # `make test` installs Debian's chromium and chromium-driver; missing, this fails loudly.
    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), "chromium is not installed"
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Dashboard:
    def __init__(self, driver: WebDriver, base_url: str, shots: Path) -> None:
        self.driver, self.base_url, self.shots = driver, base_url, shots
        shots.mkdir(parents=True, exist_ok=True)

    def open(self, route: str, ready_css: str, timeout: float = 20) -> None:
        # Cleared first, so the wait cannot be met by the page before.
        self.driver.execute_script("document.getElementById('main')?.replaceChildren()")
        self.driver.get(f"{self.base_url}/ui/{route}")
        self.wait_for(ready_css, timeout)

    def wait_for(self, css: str, timeout: float = 20) -> None:
        try:
            WebDriverWait(self.driver, timeout).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, css)
            )
        except TimeoutException:
            body = self.driver.find_element(By.TAG_NAME, "body").text
            raise AssertionError(f"{css!r} never appeared; the page shows: {body[:600]}") from None

    def text(self) -> str:
        return self.driver.find_element(By.ID, "main").text

    def points(self, chart_id: str) -> int:
        return int(self.driver.find_element(By.ID, chart_id).get_attribute("data-points") or 0)

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def sign_in(self, key: str) -> None:
        self.driver.get(f"{self.base_url}/ui/")
        self.wait_for("form.sign-in input")
        field = self.driver.find_element(By.CSS_SELECTOR, "form.sign-in input")
        field.clear()
        field.send_keys(key)
        self.driver.find_element(By.CSS_SELECTOR, "form.sign-in button").click()

    def sign_out(self) -> None:
        self.driver.execute_script("sessionStorage.clear()")


def second_project_key(service: Service) -> str:
    engine = create_db_engine(Settings(data_dir=service.data_dir).effective_database_url)
    with transaction(create_session_factory(engine)) as session:
        _, secret = create_project(session, "other-team")
    engine.dispose()
    return secret


def test_every_page_shows_the_projects_data_and_a_training_curve_grows_live(
    browser: WebDriver, tmp_path: Path
) -> None:
    with running_service(tmp_path, KEY) as service, service.client() as client:
        service.worker("worker")
        dataset = client.upload_dataset(csv_bytes(mixed_classification(n=400)), "mixed.csv")
        base = {"task": "classification", "target": "label", "model_name": "mixed"}
        done = [
            client.wait_for_job(
                client.create_job(dataset["id"], {**base, "training": {"epochs": epochs}})["id"],
                timeout=180,
            )
            for epochs in (4, 6)
        ]
        assert all(job["status"] == "succeeded" for job in done), done
        study = client.create_study(
            dataset["id"],
            {**base, "training": {"epochs": 3}},
            {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
            max_trials=4,
            parallel_trials=1,
            sampler="random",
            name="mixed-search",
        )
        study = client.wait_for_study(study["id"], timeout=180)
        assert study["status"] == "succeeded", study
        # One row a step: epochs slow enough to watch, many enough to outlast the test.
        live = client.create_job(
            dataset["id"],
            {**base, "training": {"epochs": 400, "batch_size": 1, "early_stopping": None}},
        )
        ui = Dashboard(browser, service.base_url, tmp_path / "screenshots")

        ui.sign_in("ty_wrong_" + "x" * 24)
        ui.wait_for("form.sign-in p.error")
        assert "refused" in browser.find_element(By.CSS_SELECTOR, "form.sign-in").text
        ui.shot("sign-in")
        ui.sign_in(KEY)
        ui.wait_for("#main table")

        ui.open("#/datasets", "#main table a")
        assert "mixed" in ui.text() and "400" in ui.text()
        ui.shot("datasets")
        ui.open(f"#/datasets/{dataset['id']}", ".hist")
        assert "colour" in ui.text() and "numeric" in ui.text()
        ui.shot("dataset-profile")

        ui.open(f"#/jobs/{done[1]['id']}", "#report table.cm")
        assert ui.points("loss-chart") == 6 and ui.points("metric-chart") == 6
        assert "Test report" in ui.text() and "accuracy" in ui.text()
        importance = browser.find_elements(By.CSS_SELECTOR, "#report table")[-1].text
        assert "Drop in accuracy" in importance and "colour" in importance
        assert browser.find_element(By.ID, "compute").text == "Trained on cpu, fp32"
        ui.shot("job-finished")

        ui.open("#/models", "#main table a")
        assert "mixed" in ui.text() and "mixed-search" in ui.text()
        ui.shot("models")
        ui.open("#/models/mixed", "#main table")
        versions = browser.find_elements(By.CSS_SELECTOR, "#main tbody tr")
        assert len(versions) == 2
        ui.shot("model-versions")

        ui.open("#/studies", "#main table a")
        assert "mixed-search" in ui.text() and "succeeded" in ui.text()
        ui.open(f"#/studies/{study['id']}", "#params-plot .uplot")
        assert ui.points("params-plot") == study["counts"]["succeeded"]
        assert f"Best: trial {study['best']['number']}" in ui.text()
        ui.shot("study")

        ids = ",".join(job["id"] for job in done)
        ui.open(f"#/compare?ids={ids}", "#compare-chart .uplot")
        assert ui.points("compare-chart") == 6  # the longer run's epochs
        assert "training.epochs" in ui.text()  # the spec difference between the two
        ui.shot("compare")

        # The live job: its curve grows while the page stays open.
        ui.open(f"#/jobs/{live['id']}", "#loss-chart .uplot")
        deadline = time.monotonic() + 120
        while ui.points("loss-chart") < 2:
            assert time.monotonic() < deadline, "the running job's curve never started"
            time.sleep(0.5)
        first = ui.points("loss-chart")
        while ui.points("loss-chart") <= first:
            assert time.monotonic() < deadline, f"the curve stayed at {first} epochs"
            time.sleep(0.5)
        assert "running" in ui.text()
        ui.shot("job-live")
        client.cancel_job(live["id"])

        # Another project's key sees none of this project's data.
        ui.sign_out()
        ui.sign_in(second_project_key(service))
        ui.open("#/jobs", "#main h1")
        assert live["id"] not in ui.text() and done[0]["id"] not in ui.text()
        ui.open("#/datasets", "#main h1")
        assert "mixed" not in ui.text()
        ui.open(f"#/jobs/{done[0]['id']}", "#main .error")
        assert "not found" in ui.text().lower()
        ui.shot("other-project")
