"""The upload page at ``/`` in a real headless Chromium (Selenium + Debian's chromium-driver).

A real uvicorn server serves an exported model behind an API token; the browser types the token,
picks a real clip from ../shared/data/media, submits the form and waits for the top-k bars; the labels and percentages
on the page must equal ``POST /predict``'s JSON for the same file. A screenshot is saved under the
test's tmp dir. Skipped (with the install line) when no browser or driver is installed.
"""
from __future__ import annotations

import shutil
import time

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
pytest.importorskip("multipart")

INSTALL = "apt-get install -y chromium chromium-driver && pip install 'vidcat[browser]'"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


TOKEN = "browser-test-token"


@pytest.fixture()
def server(tmp_path, make_checkpoint):
    """uvicorn in a thread serving an exported tiny3d (random weights) on a free port, token required."""
    from test_serve_security import running

    from vidcat.inference.export import export_onnx
    from vidcat.inference.onnx_predictor import OnnxPredictor
    from vidcat.inference.server import create_app

    ckpt = make_checkpoint(tmp_path / "tiny.pt", "tiny3d", seed=3, frames=8, size=48)
    export_onnx(ckpt, tmp_path / "tiny.onnx", latency=False)
    app = create_app(OnnxPredictor(tmp_path / "tiny.onnx", topk=3), token=TOKEN,
                     allowed_hosts=("127.0.0.1", "localhost"))
    with running(app) as port:
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture()
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium not installed: {INSTALL}")
    if not CHROMIUM or not DRIVER:
        pytest.skip(f"no headless browser installed (chromium + chromedriver): {INSTALL}")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=900,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    yield driver
    driver.quit()


def test_upload_page_in_chromium(server, browser, media_files, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    clip = next(p for p in media_files if p.name == "mmaction2_test.mp4")
    files = {"file": (clip.name, clip.read_bytes(), "video/mp4")}
    assert httpx.post(server + "predict", files=files, timeout=60).status_code == 401
    expected = httpx.post(server + "predict", files=files, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=60).json()
    assert len(expected["labels"]) == 3, expected

    browser.get(server)
    assert "vidcat" in browser.title
    assert browser.find_element(By.ID, "out").text == "No prediction yet."
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "file").send_keys(str(clip))
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 60).until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, "#out .row")))
    # the bars grow to their width after a CSS transition: wait until the first one has its final width
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#out .bar").get_attribute("style").startswith("width"))
    time.sleep(0.5)
    shot = tmp_path / "upload_page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 5000

    rows = browser.find_elements(By.CSS_SELECTOR, "#out .row")
    labels = [r.find_element(By.CSS_SELECTOR, ".label").text for r in rows]
    shown = [r.find_element(By.CSS_SELECTOR, ".score").text for r in rows]
    assert labels == expected["labels"]
    assert shown == [f"{100 * s:.1f}%" for s in expected["scores"]]
    assert clip.name in browser.find_element(By.ID, "out").text
    widths = [float(r.find_element(By.CSS_SELECTOR, ".bar").get_attribute("data-w").rstrip("%")) for r in rows]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
