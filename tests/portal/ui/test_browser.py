"""The web admin in a real browser: headless Chromium (Debian's) driven by Selenium against a real uvicorn.

Screenshots of each step go to ``test-artifacts/`` at the repository root. When
Chromium, its driver or Selenium is missing the tests skip, naming what to
install; with ``STOREKEEPER_REQUIRE_BROWSER=1`` (CI) they fail instead.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest
from sqlalchemy.engine import make_url

from storekeeper import engines, users
from storekeeper.config import load_config
from storekeeper.portal.app import create_app
from tests.conftest import drop_test_databases
from tests.pg_server import require_postgis
from tests.portal.conftest import ADMIN_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REQUIRE_BROWSER_ENV = "STOREKEEPER_REQUIRE_BROWSER"
#: Read once, at import: the home fixtures clear STOREKEEPER_* variables while a test runs.
BROWSER_REQUIRED = os.environ.get(REQUIRE_BROWSER_ENV) == "1"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
WAIT = 30
SCREEN = (1440, 900)
SETTINGS = ("example_db", "spatial_db", "temp_db", "primary", "creator")

pytestmark = pytest.mark.slow


def _missing() -> list[str]:
    missing = [
        f"{path} (apt-get install chromium chromium-driver)"
        for path in (CHROMIUM, CHROMEDRIVER)
        if not Path(path).exists()
    ]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    return missing


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    """A headless Chromium, Debian's, with a fresh profile; nothing is downloaded."""
    missing = _missing()
    if missing:
        message = "browser tests need " + ", ".join(missing)
        if BROWSER_REQUIRED:
            pytest.fail(f"{message}; {REQUIRE_BROWSER_ENV}=1 forbids skipping them.", pytrace=False)
        pytest.skip(f"{message}; or set {REQUIRE_BROWSER_ENV}=1 to make this a failure.")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    with tempfile.TemporaryDirectory(prefix="storekeeper-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            f"--window-size={SCREEN[0]},{SCREEN[1]}",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(WAIT)
        try:
            yield driver
        finally:
            driver.quit()


class LiveServer:
    """uvicorn serving one app in a thread, on a loopback port."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="live-portal", daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + WAIT
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT)


@pytest.fixture
def live_portal(sk_home: Path, platform: Any, closed_port: int) -> Iterator[str]:
    """The portal of the test's home, served by uvicorn; its admin is "admin"."""
    users.upsert_user(platform, "admin", ADMIN_PASSWORD, role="admin")
    with LiveServer(create_app(load_config()), closed_port) as server:
        yield server.url


@pytest.fixture
def no_test_databases(pg_admin_url: str) -> Iterator[None]:
    """Start and end with none of the test apps' databases on the test server."""
    drop_test_databases(pg_admin_url)
    yield
    engines.clear()
    drop_test_databases(pg_admin_url)


@pytest.fixture
def browser(chrome: Any, live_portal: str) -> Any:
    """The browser on a fresh session of the live portal."""
    chrome.get(f"{live_portal}/admin/login")
    chrome.delete_all_cookies()  # cookies are per host, not per port: forget the previous test's
    chrome.base = live_portal
    return chrome


@pytest.fixture
def snap(chrome: Any) -> Callable[..., Path]:
    """Save a full-page screenshot as test-artifacts/<name>.png (``width``: of the window, in CSS pixels)."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(name: str, width: int = SCREEN[0]) -> Path:
        # The whole page, not only the viewport: emulate a screen as tall as the page for the shot.
        chrome.execute_script("window.scrollTo(0, 0)")
        height = int(chrome.execute_script("return document.documentElement.scrollHeight"))
        chrome.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": max(SCREEN[1], min(height, 4000)),
                "deviceScaleFactor": 1,
                "mobile": False,
            },
        )
        try:
            shot = chrome.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        finally:
            chrome.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    return save


def _wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    """Wait for ``condition``; errors of a page being replaced (stale, detached nodes) just mean: not yet."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=(WebDriverException,)).until(
        condition, message=f"waited {WAIT}s for {what}"
    )


def _text(driver: Any, css: str) -> str:
    """The text of the first element matching ``css`` ("" when there is none), read in one step."""
    return str(
        driver.execute_script("var e = document.querySelector(arguments[0]); return e ? e.textContent : '';", css)
    )


def _attr(driver: Any, css: str, name: str) -> str | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        "var e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;", css, name
    )


def _sign_in(driver: Any, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{driver.base}/admin/")
    assert "/admin/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, lambda d: d.current_url.rstrip("/").endswith("/admin"), "the home page")


def _flash(driver: Any) -> str:
    return _text(driver, ".alert[role=status]")


#: Widths the admin pages are checked at: a laptop window and a phone.
LAYOUT_WIDTHS = (1400, 420)

#: Every table must show all its columns, or sit in a box that scrolls sideways (overflow-x: auto).
_HIDDEN_COLUMNS_JS = """
const problems = [];
const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
for (const table of document.querySelectorAll('table')) {
  const tr = table.getBoundingClientRect();
  if (tr.width === 0) continue;
  let scrolls = false;
  for (let a = table.parentElement; a && a !== document.documentElement; a = a.parentElement) {
    const ox = getComputedStyle(a).overflowX;
    if (ox === 'auto' || ox === 'scroll') { scrolls = true; break; }
    if (ox === 'hidden' || ox === 'clip') {
      const ar = a.getBoundingClientRect();
      if (tr.right > ar.right + 1 || tr.left < ar.left - 1) {
        problems.push(name(table) + ' is cut off by ' + name(a) + ' (' + Math.round(tr.right - ar.right) + ' px)');
      }
    }
  }
  if (!scrolls && tr.right > document.documentElement.clientWidth + 1) {
    problems.push(name(table) + ' runs past the window (' + Math.round(tr.right) + ' px)');
  }
}
if (document.documentElement.scrollWidth > document.documentElement.clientWidth + 1) {
  problems.push('the page is ' + document.documentElement.scrollWidth + ' px wide');
}
return problems;
"""


def _check_layout(driver: Any, snap: Callable[..., Path], pages: dict[str, str]) -> list[str]:
    """Load each page at each width; return what hides a table column; screenshot each as layout-<width>-<page>."""
    problems = []
    try:
        for width in LAYOUT_WIDTHS:
            for label, path in pages.items():
                # Set for each page: the screenshot ends its own override.
                driver.execute_cdp_cmd(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": SCREEN[1], "deviceScaleFactor": 1, "mobile": False},
                )
                driver.get(f"{driver.base}{path}")
                _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete", path)
                problems += [f"{width} px {path}: {p}" for p in driver.execute_script(_HIDDEN_COLUMNS_JS)]
                snap(f"layout-{width}-{label}", width)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return problems


def _no_secret(driver: Any, secrets: list[str]) -> None:
    source = driver.page_source
    for secret in secrets:
        assert secret not in source, driver.current_url


def test_admin_adds_a_service_assigns_it_syncs_and_sees_the_stores_initialized(
    no_test_databases, browser, snap, pg_admin_url, postgis_available, secrets
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    require_postgis(postgis_available)  # spatial_db needs it
    url = make_url(pg_admin_url)
    snap("01-sign-in")
    _sign_in(browser)
    assert "My First App" in browser.page_source
    snap("02-home")

    # Add the test server as a service, with the form.
    browser.find_element(By.LINK_TEXT, "Services").click()
    browser.find_element(By.PARTIAL_LINK_TEXT, "Add service").click()
    fields = {
        "svc-name": "pg",
        "svc-host": url.host or "127.0.0.1",
        "svc-port": str(url.port or 5432),
        "svc-username": url.username or "postgres",
        "svc-password": url.password or "",
    }
    for field_id, value in fields.items():
        element = browser.find_element(By.ID, field_id)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "svc-pool").clear()
    browser.find_element(By.ID, "svc-pool").send_keys("2")
    snap("03-add-service")
    browser.find_element(By.CSS_SELECTOR, "form.form-card button[type=submit]").click()
    _wait(browser, lambda d: d.current_url.endswith("/admin/services/pg"), "the new service's page")
    assert 'Service "pg" added' in _flash(browser)
    assert browser.find_element(By.ID, "svc-password").get_attribute("value") == ""

    browser.find_element(By.ID, "test-connection").click()
    report = _wait(browser, lambda d: _text(d, "#report"), "the connection report")
    assert "Connection works" in report and "PostGIS available" in report
    _no_secret(browser, secrets)
    snap("04-service-tested")

    # Plug it into each of my_first_app's settings with the dropdowns.
    browser.get(f"{browser.base}/admin/apps/my_first_app")
    for setting in SETTINGS:
        Select(browser.find_element(By.ID, f"service-{setting}")).select_by_value("pg")
        browser.find_element(By.CSS_SELECTOR, f"#setting-{setting} form.assign button[type=submit]").click()
        _wait(browser, lambda d, s=setting: f'Setting "{s}" now uses service "pg"' in _flash(d), f"{setting} assigned")
    selected = [Select(browser.find_element(By.ID, f"service-{s}")).first_selected_option.text for s in SETTINGS]
    assert selected == ["pg"] * len(SETTINGS)

    # Sync: the results appear live, then the page shows the stores initialized.
    browser.find_element(By.ID, "sync-button").click()
    _wait(browser, lambda d: "job=" in d.current_url, "the sync job")
    snap("05-sync-started")
    for store in ("example_db", "spatial_db", "temp_db"):
        _wait(browser, lambda d, s=store: "ready" in _text(d, f'tr[data-store="{s}"]'), f"{store} ready")
    _wait(browser, lambda d: _attr(d, "#job", "data-job-status") == "succeeded", "the job to succeed")
    for store in ("example_db", "spatial_db", "temp_db"):
        _wait(
            browser,
            lambda d, s=store: _attr(d, f"#setting-{s} .store-cell", "data-store-state") == "initialized",
            f"{store} initialized after the reload",
        )
    # A page rendered after the job finished has no live note (and will not reload itself again).
    _wait(
        browser,
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && !document.querySelector('[data-job-live]')"
        ),
        "the reload",
    )
    cell = browser.find_element(By.CSS_SELECTOR, "#setting-example_db .store-cell").text
    assert "initialized" in cell and "exists ·" in cell and "MB" in cell
    assert browser.find_element(By.CSS_SELECTOR, ".page-head .badges").text.split() == ["configured", "ready"]
    _no_secret(browser, secrets)
    snap("06-app-synced")

    # The service is in use now: deleting it is refused, with the core's reason.
    browser.get(f"{browser.base}/admin/services/pg")
    browser.find_element(By.CSS_SELECTOR, ".danger-zone button").click()
    _wait(browser, lambda d: d.switch_to.alert, "the confirm dialog").accept()
    refusal = _wait(browser, lambda d: _text(d, ".alert[role=alert]"), "the refusal")
    assert 'Service "pg" is assigned to 5 setting(s)' in refusal and "my_first_app/example_db" in refusal
    snap("07-service-delete-refused")

    browser.get(f"{browser.base}/admin/")
    snap("08-home-ready")

    # Every admin page, at a laptop's and a phone's width: no table hides a column without a scroll bar.
    # (The app page's settings table used to cut off its store column, state and Drop link, at 1400 px.)
    pages = {
        "home": "/admin/",
        "apps": "/admin/apps",
        "app": "/admin/apps/my_first_app",
        "services": "/admin/services",
        "service": "/admin/services/pg",
        "users": "/admin/users",
        "audit": "/admin/audit",
    }
    problems = _check_layout(browser, snap, pages)
    assert not problems, "\n".join(problems)


def test_admin_creates_a_token_sees_it_once_and_revokes_it_after_confirming(browser, snap, secrets):
    from selenium.webdriver.common.by import By

    _sign_in(browser)
    browser.find_element(By.PARTIAL_LINK_TEXT, "Users").click()
    browser.find_element(By.ID, "new-username").send_keys("vera")
    browser.find_element(By.ID, "new-password").send_keys("vera-password-1")
    browser.find_element(By.CSS_SELECTOR, "#add-user-title ~ form button[type=submit]").click()
    _wait(browser, lambda d: 'User "vera" added' in _flash(d), "the new user")

    browser.find_element(By.ID, "token-name").send_keys("deploy script")
    browser.find_element(By.ID, "token-name").submit()
    token = _wait(browser, lambda d: _attr(d, "#new-token-value", "value"), "the new token")
    assert token.startswith("skt_")
    snap("09-users-token-once")

    browser.get(f"{browser.base}/admin/users")
    assert token not in browser.page_source  # shown once
    browser.find_element(By.XPATH, "//tr[th[normalize-space()='deploy script']]//button").click()
    alert = _wait(browser, lambda d: d.switch_to.alert, "the confirm dialog")
    assert "Revoke token deploy script" in alert.text
    alert.accept()
    _wait(browser, lambda d: "revoked" in _flash(d), "the token revoked")
    _no_secret(browser, [*secrets, token])

    browser.find_element(By.PARTIAL_LINK_TEXT, "Audit").click()
    assert "token.revoke" in browser.page_source and "user.create" in browser.page_source
    snap("10-audit")

    browser.get(f"{browser.base}/admin/no/such/page")
    assert "There is no page at /admin/no/such/page" in browser.page_source
    snap("11-not-found")

    # The new viewer sees the same pages, with every control disabled.
    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    _wait(browser, lambda d: "Signed out" in _flash(d), "the sign-in page")
    _sign_in(browser, "vera", "vera-password-1")
    browser.get(f"{browser.base}/admin/apps/my_first_app")
    assert not browser.find_element(By.ID, "service-example_db").is_enabled()
    assert not browser.find_element(By.ID, "sync-button").is_enabled()
    snap("12-viewer-app-page")
