"""The operator's page in a real browser: headless Chromium driven by Selenium against a real
server (uvicorn on a free port, the real service with the bundled tiny model, two generated clips).

Skipped, with the reason, where Debian's chromium or chromedriver is not installed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamdeq.serve.http import create_app
from streamdeq.serve.security import SourcePolicy

from .service_helpers import bundled_model, clip_file, make_service
from .service_helpers import wait_for as wait_for_value
from .uvicorn_thread import serve_in_thread

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TOKEN = "browser-test-token"
PATIENCE_S = 20.0

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, object]]:
    """A running ``streamdeq serve`` equivalent with streams "north" (M = 1) and "south"."""
    media = tmp_path / "media"
    media.mkdir()
    service = make_service(bundled_model(), max_streams=4)
    service.start()
    for name, iters in (("north", 1), ("south", 1)):
        clip = clip_file(media, frames=10, name=f"{name}.mp4")
        service.add_stream(str(clip), stream_id=name, loop=True, settings={"iters": iters})
    app = create_app(
        service, token=TOKEN, allowed_hosts=None, policy=SourcePolicy(media), loopback=True
    )
    with serve_in_thread(app, before_exit=service.stop) as url:
        yield url, service


@pytest.fixture
def browser(tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    )
    driver.set_page_load_timeout(PATIENCE_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition, what: str, timeout: float = PATIENCE_S):
    """``service_helpers.wait_for`` for page elements: the page redraws a tile's text and images
    as results arrive, so an element found a moment ago may be gone when it is read; that is
    "not yet", not a failure."""
    from selenium.common.exceptions import StaleElementReferenceException

    def settled():
        try:
            return condition()
        except StaleElementReferenceException:
            return None

    return wait_for_value(settled, what, timeout)


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("STREAMDEQ_ARTIFACTS") or tempfile.mkdtemp(prefix="streamdeq-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_page_shows_live_tiles_and_drives_the_streams(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, service = server
    # "east" has ended before the page opens: no event will ever come for it
    east = clip_file(Path(service.streams()[0]["source"]).parent, frames=4, name="east.mp4")
    service.add_stream(str(east), stream_id="east", settings={"iters": 2})
    wait_for(lambda: service.stream("east")["state"] == "ended", "east to end")
    wait_for(lambda: service.latest_result("east"), "east's last result")  # taken after the end
    browser.get(f"{url}/#token={TOKEN}")

    def tile(name: str):
        return browser.find_element(By.CSS_SELECTOR, f'section.tile[data-stream="{name}"]')

    def tiles() -> list[str]:
        found = browser.find_elements(By.CSS_SELECTOR, "section.tile")
        return sorted(t.get_attribute("data-stream") for t in found)

    wait_for(lambda: tiles() == ["east", "north", "south"], "one tile per stream", PATIENCE_S)

    def shown_overlay(name: str) -> str | None:  # the <img> URL once its picture has loaded
        return browser.execute_script(
            "const img = arguments[0];"
            "return !img.hidden && img.complete && img.naturalWidth > 0 ? img.src : null;",
            tile(name).find_element(By.CSS_SELECTOR, "img.overlay"),
        )

    def reported_iters(name: str) -> str:
        return tile(name).find_element(By.CSS_SELECTOR, ".now .iters").text

    def badge(name: str) -> str:
        return tile(name).find_element(By.CSS_SELECTOR, "figure.main figcaption").text

    # the ended stream shows its last picture, result and real state
    wait_for(lambda: shown_overlay("east"), "east's last overlay")
    wait_for(lambda: reported_iters("east") == "2", "east's last result")
    wait_for(lambda: badge("east") == "ended", "east's badge")
    wait_for(lambda: badge("north") == "live", "north's badge")

    first = wait_for(lambda: shown_overlay("north"), "a first overlay", PATIENCE_S)
    assert "overlay.jpg" in first and f"token={TOKEN}" in first
    wait_for(lambda: shown_overlay("north") not in (None, first), "the overlay to advance")

    wait_for(lambda: reported_iters("south") == "1", "south's M = 1 results", PATIENCE_S)
    tile("south").find_element(By.CSS_SELECTOR, ".iters-slider").send_keys(Keys.END)  # M = 8
    wait_for(lambda: reported_iters("south") == "8", "south's M = 8 results", PATIENCE_S)
    assert service.settings("south")["iters"] == 8
    assert service.settings("north")["iters"] == 1
    wait_for(lambda: reported_iters("north") == "1", "north still at M = 1")

    wait_for(lambda: browser.find_element(By.ID, "sum-streams").text == "3", "the summary row")
    browser.save_screenshot(str(artifacts_dir() / "serve-page.png"))

    def click_remove() -> bool:
        tile("north").find_element(By.CSS_SELECTOR, "button.remove").click()
        return True

    wait_for(click_remove, "a first click on north's Remove")
    wait_for(click_remove, "the second click, which confirms")
    wait_for(lambda: tiles() == ["east", "south"], "the removed stream's tile to go", PATIENCE_S)
    assert [info["id"] for info in service.streams()] == ["south", "east"]

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors

    browser.get(f"{url}/")  # without the token: the page loads and says a token is needed
    banner = wait_for(
        lambda: "needs a token" in (text := browser.find_element(By.ID, "banner").text) and text,
        "the token notice",
    )
    assert "#token=" in banner
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(artifacts_dir() / "serve-page-no-token.png"))
    assert not shown_overlay("east")  # no picture without the token, and no broken one
    placeholder = tile("east").find_element(By.CSS_SELECTOR, "figure.main .placeholder")
    wait_for(lambda: placeholder.is_displayed() and "token" in placeholder.text, "a placeholder")
    # writes are refused in one line
    form = browser.find_element(By.ID, "add-form")
    form.find_element(By.NAME, "source").send_keys("north.mp4")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    message = wait_for(lambda: browser.find_element(By.ID, "add-error").text, "the add error")
    assert "token" in message
