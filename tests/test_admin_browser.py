"""The admin pages in a real headless browser: sign in through the login form, open the
dashboard, follow a statement to its detail page, press EXPLAIN and read the plan.

Debian's ``chromium`` and ``chromium-driver`` with Selenium (the ``dev`` extra). Screenshots of
the three pages go to ``$DBPERF_SCREENSHOTS``, else ``test-artifacts/screenshots/`` (the
documentation's copies are made with ``DBPERF_SCREENSHOTS=docs/_static/screenshots``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from django_dbperf import stats
from django_dbperf.stats.flusher import FLUSHER
from django_dbperf.stats.models import QueryShape
from tests.conftest import missing
from tests.helpers import make_library
from tests.test_admin import ADMIN_MIDDLEWARE

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 30
PASSWORD = "browser-test-password"
SCREENSHOTS = Path(
    os.environ.get("DBPERF_SCREENSHOTS")
    or Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium through chromedriver; quit however the test ends."""
    for binary, package in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]:
        if not shutil.which(binary):
            missing(f"needs {binary} (Debian: apt-get install {package})")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        # The dev extra has Selenium; the Django 5.2 venv (the test extra only) does not.
        pytest.skip("needs Selenium: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
        "--disable-gpu", "--no-first-run", "--disable-extensions", "--hide-scrollbars",
    ]:  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(WAIT_S)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def recorded_shape(transactional_db: None) -> Iterator[QueryShape]:
    """A superuser, and two requests of the N+1 view recorded and flushed: its author query."""
    FLUSHER.buffer.take()
    with override_settings(MIDDLEWARE=ADMIN_MIDDLEWARE):
        User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
        make_library(authors=3, books_per_author=2)
        client = Client()
        for _ in range(2):
            assert client.get("/testapp/n-plus-one/").status_code == 200
        assert stats.flush().written
        yield QueryShape.objects.get(sql__contains='FROM "testapp_author"')
    FLUSHER.buffer.take()


def screenshot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert driver.save_screenshot(str(path)), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sign_in_open_a_statement_and_explain_it(
    live_server: LiveServer, browser: WebDriver, recorded_shape: QueryShape
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    shape = recorded_shape
    dashboard = "/admin/django_dbperf/dashboard/"
    detail = f"/admin/django_dbperf/queryshape/{shape.pk}/"

    def text(selector: str) -> str:
        return str(wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, selector))).text)

    # Sign in through the form; the login page sends us on to the dashboard.
    browser.get(f"{live_server.url}/admin/login/?next={dashboard}")
    wait.until(EC.visibility_of_element_located((By.ID, "id_username"))).send_keys("admin")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    wait.until(EC.url_to_be(f"{live_server.url}{dashboard}"))

    assert text("#content h1") == "Dashboard"
    views = text("#content section:nth-of-type(1) table")
    assert "n_plus_one" in views
    statements = text("#content section:nth-of-type(2) table")
    assert shape.fingerprint_id in statements and "testapp_author" in statements
    nplusone = text("#content section:nth-of-type(3) table")
    assert "testapp.Book.author" in nplusone and "tests/testapp/views.py:" in nplusone
    assert "Every request is sampled" in text(".dbperf-note")
    screenshot(browser, "admin-dashboard.png")

    # Follow the statement's link, found by the fingerprint the page shows.
    link = browser.find_element(By.XPATH, f"//a[code[normalize-space()='{shape.fingerprint_id}']]")
    link.click()
    wait.until(EC.url_to_be(f"{live_server.url}{detail}"))
    assert text("#content h1") == f"Statement {shape.fingerprint_id}"
    sql = text("pre.dbperf-code")
    assert 'FROM "testapp_author"' in sql and "WHERE" in sql
    assert "tests/testapp/views.py:" in text("#content")
    assert browser.find_elements(By.CSS_SELECTOR, "svg rect.bar")  # the hourly trend
    assert not browser.find_elements(By.ID, "plan-text")
    screenshot(browser, "admin-statement.png")

    # EXPLAIN (a POST with the CSRF token): the page comes back with the plan.
    browser.find_element(By.CSS_SELECTOR, "#explain button[name=analyze][value='0']").click()
    wait.until(EC.url_matches(re.escape(f"{live_server.url}{detail}explain/") + "(#explain)?$"))
    plan = text("#plan-text")
    assert "testapp_author" in plan
    assert text("#explain h3").startswith("Plan")
    assert not browser.find_elements(By.CSS_SELECTOR, ".messagelist .error")
    browser.execute_script("document.getElementById('explain').scrollIntoView()")
    screenshot(browser, "admin-explain.png")
