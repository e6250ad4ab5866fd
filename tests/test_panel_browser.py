"""The toolbar panel in a real headless browser: open a naive page of the example project with
the toolbar shown, open our panel from the toolbar and read its findings.

Same browser and screenshots as ``test_admin_browser.py`` (Debian's ``chromium`` and
``chromium-driver`` with Selenium): ``panel-nplusone.png`` and ``panel-cache.png`` go to
``$DBPERF_SCREENSHOTS``, else ``test-artifacts/screenshots/`` (the documentation's copies are
made with ``DBPERF_SCREENSHOTS=docs/_static/screenshots``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.test import Client, override_settings

from example_project.scheduler.seeding import seed_demo
from tests.test_admin_browser import WAIT_S, screenshot
from tests.test_admin_browser import browser as browser  # the fixture, shared
from tests.test_panel import MIDDLEWARE, PANELS

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement


@pytest.fixture
def toolbar_server(transactional_db: None) -> Iterator[LiveServer]:
    """A live server of its own, started with the toolbar's middleware and our panel (the
    session's ``live_server`` built its middleware before any test could add the toolbar's),
    over the example project's demo data."""
    from debug_toolbar.middleware import show_toolbar_func_or_path
    from pytest_django.live_server_helper import LiveServer

    show_toolbar_func_or_path.cache_clear()
    with override_settings(
        MIDDLEWARE=MIDDLEWARE,
        DEBUG=True,
        DEBUG_TOOLBAR_PANELS=PANELS,
        ALLOWED_HOSTS=["localhost", "testserver"],
    ):
        seed_demo(events=6)
        server = LiveServer("localhost")
        try:
            yield server
        finally:
            server.stop()
    show_toolbar_func_or_path.cache_clear()


def open_panel(browser: WebDriver, url: str, section: str) -> WebElement:
    """Load ``url``, click our panel in the toolbar (in its shadow root), and wait until the
    panel's content, fetched by the toolbar's JavaScript, has ``section`` (an element id)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(url)
    root = wait.until(lambda driver: driver.find_element(By.ID, "djDebugRoot").shadow_root)
    button = wait.until(lambda _: root.find_element(By.CSS_SELECTOR, "a.DbPerfPanel"))
    wait.until(lambda _: button.is_displayed())
    assert "N+1" in button.text  # the subtitle: "12 queries, 2 N+1"
    button.click()
    content = root.find_element(By.CSS_SELECTOR, "#DbPerfPanel .djdt-scroll")
    target = wait.until(lambda _: content.find_elements(By.CSS_SELECTOR, f"#{section}"))[0]
    browser.execute_script("arguments[0].scrollIntoView()", target)
    return content


def test_open_the_panel_on_a_naive_page(toolbar_server: LiveServer, browser: WebDriver) -> None:
    content = open_panel(browser, f"{toolbar_server.url}/events/", "dbperf-nplusone")
    text = content.text
    assert "N+1 queries" in text
    assert "scheduler.Event.owner" in text
    assert 'add .select_related("owner") to the Event queryset' in text
    assert "scheduler/event_list.html" in text
    browser.execute_script("arguments[0].scrollTop = 0", content)
    screenshot(browser, "panel-nplusone.png")


def test_the_cache_section_on_the_cached_dashboard(
    cache_alias: str, toolbar_server: LiveServer, browser: WebDriver
) -> None:
    assert Client().get("/cached/").status_code == 200  # fills the cache: the page hits it
    content = open_panel(browser, f"{toolbar_server.url}/cached/", "dbperf-cache")
    text = content.text
    assert "3 hits, 0 misses, 0 served uncached, 0 invalidations." in text
    assert "scheduler.Event" in text and "scheduler.Server" in text
    assert "0 queries" in text
    screenshot(browser, "panel-cache.png")
