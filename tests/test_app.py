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

TINY = Path(__file__).parent / "data" / "vp-tiny.json"
LONG_SECONDS, LONG_FPS = 60, 4  # over the app's 20 s, so the page localises it

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


def _library(root: Path) -> None:
    """The served folder: a short clip, a long one (red, then blue), a corrupt file, and a trained run."""
    import numpy as np
    import torch

    from vidprompt.backbone import build_backbone
    from vidprompt.checkpoint import save_checkpoint
    from vidprompt.methods.promptclip import PromptCLIP
    from vidprompt.video import ViewConfig

    write_video(root / "red.mp4", solid_video((220, 30, 30), n=24, h=48, w=48))
    half = LONG_SECONDS * LONG_FPS // 2
    write_video(root / "long.mp4", np.concatenate([solid_video((220, 30, 30), n=half, h=48, w=48),
                                                   solid_video((30, 30, 220), n=half, h=48, w=48)]), fps=LONG_FPS)
    (root / "broken.mp4").write_bytes(b"not a video at all" * 100)
    model = PromptCLIP(build_backbone(str(TINY), "none"), temporal_layers=1, temporal_heads=4, max_frames=4)
    with torch.no_grad():
        model.temporal.position.normal_()
    (root / "runs" / "kitchen").mkdir(parents=True)
    save_checkpoint(root / "runs" / "kitchen" / "best.safetensors", model, ViewConfig(frames=4),
                    ["whisking", "chopping", "frying"])


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("library")
    _library(root)
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.mp4"
    write_video(outside, solid_video((30, 30, 220)))
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("uploads")), "PYTHONPATH": os.pathsep.join(sys.path)}
    index = tmp_path_factory.mktemp("index") / "library.idx"
    subprocess.run([sys.executable, "-m", "vidprompt", "index", str(root / "red.mp4"), str(root / "long.mp4"),
                    "--out", str(index), "--model", tiny_config, "--pretrained", "none", "-j", "0", "--quiet"],
                   env=env, check=True, capture_output=True)
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
                 "--disable-dev-shm-usage", "--window-size=1400,1900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))


def _choose(browser, elem_id: str, text: str, *, shown: str | None = None) -> None:
    """Set a picker as a user does: type ``text``, then click the offered option ``shown``, or (``shown`` None)
    leave the field so the typed text is the value."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    field = browser.find_element(By.CSS_SELECTOR, f"#{elem_id} input")
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(text)
    if shown is None:
        field.send_keys(Keys.TAB)
        return

    def clicked(d):  # the list re-renders as it filters: an option found may be gone a moment later
        option = next((o for o in d.find_elements(By.CSS_SELECTOR, "[role=option]")
                       if o.is_displayed() and o.text.strip().endswith(shown)), None)
        if option is not None:
            option.click()
        return option is not None

    WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(clicked)
    WebDriverWait(browser, 30).until(lambda d: field.get_attribute("value") == shown)


def _classify(browser, *, upload: Path | None = None, path: str = "", pick: str | None = None,
              model: str | None = None, labels: str = "red, blue, green", seen: list | None = None):
    """Fill the Classify tab and press the button; the result message or the error toast's text. ``path``: typed
    into the video picker; ``pick``: the picker's option to click; ``model``: the model option to click;
    ``seen``: collects the progress texts the page shows while the job runs."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if upload is not None:
        for button in browser.find_elements(By.CSS_SELECTOR, "#upload button[aria-label=Clear]"):
            button.click()  # a file is already there: clear it, as a user would
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(upload))
        WebDriverWait(browser, 30).until(lambda d: upload.name in d.page_source)
    if pick is not None:
        _choose(browser, "path", pick, shown=pick)
    elif path:
        _choose(browser, "path", path)
    if model is not None:
        _choose(browser, "model", model, shown=model)
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
        if seen is not None:
            seen.extend(t.text for t in d.find_elements(By.CSS_SELECTOR, "[data-testid=status-tracker]")
                        if t.text.strip())
        new = toasts(d)[before:]
        return ("error", new[-1]) if new else ("ok", message(d)) if message(d) and message(d) != shown else False

    return WebDriverWait(browser, 180, poll_frequency=0.1).until(answered)


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
    assert kind == "error" and "outside the folders this app serves" in message, message
    with pytest.raises(OSError):  # nor is it served as a file
        urllib.request.urlopen(f"{served['url']}gradio_api/file={served['outside']}", timeout=5)


def test_search_an_index_by_text_and_by_example_and_play_the_matches(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, served["url"])
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == "Search").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "query").is_displayed())
    browser.find_element(By.CSS_SELECTOR, "#query textarea, #query input").send_keys("a red square")
    browser.find_element(By.ID, "search").click()
    WebDriverWait(browser, 120).until(lambda d: all(name in d.find_element(By.ID, "hits").text
                                                    for name in ("red.mp4", "long.mp4")))
    sources = [v.get_attribute("src") for v in browser.find_elements(By.CSS_SELECTOR, "#players video")]
    assert len(sources) == 2 and all("#t=" in src for src in sources), sources
    for src in sources:  # each player's file is served to the page
        with urllib.request.urlopen(src.split("#")[0], timeout=10) as answer:
            assert answer.status == 200 and answer.read(8)
    _shot(browser, "search")

    _choose(browser, "like", "long", shown="long.mp4")  # query by example: the clip itself comes first
    browser.find_element(By.CSS_SELECTOR, "#query textarea, #query input").clear()
    browser.find_element(By.ID, "search").click()

    def first_row(d):  # the table's text: the five headers, then row by row
        cells = d.find_element(By.ID, "hits").text.split("\n")
        return len(cells) >= 10 and cells[7].endswith("long.mp4") and float(cells[6]) > 0.99

    WebDriverWait(browser, 120).until(first_row)


def test_a_long_video_picked_from_the_folder_gets_its_timeline_with_progress(served, browser):
    from selenium.webdriver.common.by import By

    _open(browser, served["url"])
    seen: list[str] = []
    kind, message = _classify(browser, pick="long.mp4", labels="red, blue", seen=seen)
    assert kind == "ok" and message.startswith("long.mp4: ") and f"over {LONG_SECONDS} s" in message, message
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline img")  # the timeline is drawn
    rows = browser.find_element(By.ID, "segments").text
    assert "red" in rows or "blue" in rows, rows  # the segments, in a table
    # the job's stages on the page (which ones a poll catches depends on the machine's speed)
    assert any(stage in text for text in seen for stage in ("localising", "timeline")), seen
    _shot(browser, "timeline")


def test_a_checkpoint_found_in_the_folder_is_picked_and_its_classes_are_the_labels(served, browser):
    from selenium.webdriver.common.by import By

    _open(browser, served["url"])
    kind, message = _classify(browser, pick="red.mp4", model="runs/kitchen/best.safetensors (promptclip, 3 classes)",
                              labels="")
    assert kind == "ok" and message.startswith("red.mp4: "), message
    ranking = browser.find_element(By.ID, "ranking").text
    assert all(label in ranking for label in ("whisking", "chopping", "frying")), ranking
