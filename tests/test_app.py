"""``vidprompt app`` in a real browser: headless Debian Chromium driven by Selenium against the app started by the
test on 127.0.0.1 with the tiny model. Skipped only when Chromium, its driver or the ``app`` extra is absent."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from media import solid_video, write_video

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="Debian's chromium and chromium-driver are not installed")


@pytest.fixture(scope="module", autouse=True)
def app_extra():
    """With a browser here, the app must be testable: a missing extra fails, it does not skip."""
    import importlib.util

    missing = [name for name in ("gradio", "selenium") if importlib.util.find_spec(name) is None]
    assert not missing, f'{", ".join(missing)} missing: pip install ".[test,app]"'

SHOTS = Path(os.environ.get("VIDPROMPT_SCREENSHOTS", "")) if os.environ.get("VIDPROMPT_SCREENSHOTS") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("library")
    write_video(root / "red.mp4", solid_video((220, 30, 30), n=24, h=48, w=48))
    (root / "broken.mp4").write_bytes(b"not a video at all" * 100)
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.mp4"
    write_video(outside, solid_video((30, 30, 220)))
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("uploads")), "PYTHONPATH": os.pathsep.join(sys.path)}
    index = tmp_path_factory.mktemp("index") / "library.idx"
    subprocess.run([sys.executable, "-m", "vidprompt", "index", str(root / "red.mp4"), "--out", str(index),
                    "--model", tiny_config, "--pretrained", "none", "-j", "0", "--quiet"], env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "vidprompt", "app", str(root), "--model", tiny_config,
                             "--pretrained", "none", "--port", str(port), "--index", str(index)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"the app exited: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the app did not answer within 120 s")
    yield {"url": url, "root": root, "outside": outside}
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))


def _classify(browser, *, upload: Path | None = None, path: str = "", labels: str = "red, blue, green"):
    """Fill the Classify tab and press the button; the result message or the error toast's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if upload is not None:
        for button in browser.find_elements(By.CSS_SELECTOR, "#upload button[aria-label=Clear]"):
            button.click()  # a file is already there: clear it, as a user would
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(upload))
        WebDriverWait(browser, 30).until(lambda d: upload.name in d.page_source)
    field = browser.find_element(By.CSS_SELECTOR, "#path textarea, #path input")
    field.clear()
    field.send_keys(path)
    box = browser.find_element(By.CSS_SELECTOR, "#labels textarea, #labels input")
    box.clear()
    box.send_keys(labels)
    def toasts(d):
        return [t.text for t in d.find_elements(By.CSS_SELECTOR, ".toast-body, [data-testid='toast-body']")
                if t.text.strip()]

    def message(d):
        return d.find_element(By.CSS_SELECTOR, "#message textarea, #message input").get_attribute("value")

    before, shown = len(toasts(browser)), message(browser)
    browser.find_element(By.ID, "classify").click()

    def answered(d):  # a new error toast, or a new result
        new = toasts(d)[before:]
        return ("error", new[-1]) if new else ("ok", message(d)) if message(d) and message(d) != shown else False

    return WebDriverWait(browser, 120).until(answered)


def _shot(browser, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / f"{name}.png"))


def test_classify_an_uploaded_clip_and_read_the_ranked_labels(served, browser):
    from selenium.webdriver.common.by import By

    _open(browser, served["url"])
    kind, message = _classify(browser, upload=served["root"] / "red.mp4")
    assert kind == "ok" and message.startswith("red.mp4: "), message
    ranking = browser.find_element(By.ID, "ranking").text
    assert all(label in ranking for label in ("red", "blue", "green")) and "%" in ranking
    assert browser.find_elements(By.CSS_SELECTOR, "#frames img")  # the sampled frames are shown
    _shot(browser, "classify")


def test_a_corrupt_video_is_a_message_and_the_page_keeps_working(served, browser):
    _open(browser, served["url"])
    kind, message = _classify(browser, upload=served["root"] / "broken.mp4")  # uploaded, as a user drops it
    assert kind == "error" and "broken.mp4" in message, message
    _shot(browser, "corrupt")
    kind, message = _classify(browser, upload=served["root"] / "red.mp4")  # the next job still runs
    assert kind == "ok" and message.startswith("red.mp4: "), message


def test_a_path_outside_the_served_folders_is_refused(served, browser):
    _open(browser, served["url"])
    kind, message = _classify(browser, path=str(served["outside"]))
    assert kind == "error" and "outside the folders this app serves" in message
    with pytest.raises(OSError):  # nor is it served as a file
        urllib.request.urlopen(f"{served['url']}gradio_api/file={served['outside']}", timeout=5)


def test_search_an_index_and_play_the_matches(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, served["url"])
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == "Search").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "query").is_displayed())
    browser.find_element(By.CSS_SELECTOR, "#query textarea, #query input").send_keys("a red square")
    browser.find_element(By.ID, "search").click()
    WebDriverWait(browser, 120).until(lambda d: "red.mp4" in d.find_element(By.ID, "hits").text)
    players = browser.find_elements(By.CSS_SELECTOR, "#players video")
    assert len(players) == 1 and "red.mp4#t=" in players[0].get_attribute("src")
    _shot(browser, "search")
