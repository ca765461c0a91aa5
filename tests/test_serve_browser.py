"""`derive serve` in a real browser: headless Chromium driven by Selenium against the real server.

The server runs as `python -m derive serve` in a subprocess on 127.0.0.1 (a free port) with a copy
of examples/class/assignment.toml; the browser reaches nothing else (--host-resolver-rules maps every
other host to nowhere). The tests check what only a browser shows: the live MathML preview that
/static/derive.js fetches as one types (under the page's Content-Security-Policy, with no console
error), the verdict page, the teacher's gradebook and its CSV download, and the page without
JavaScript (the server renders the preview on the result page).

DERIVE_SCREENSHOTS=1 writes the README's screenshots to docs/serve-student.png and
docs/serve-teacher.png; otherwise they go to a temporary directory, so the checkout is unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# make setup installs Debian's chromium and chromium-driver and the test extra's selenium: never skipped
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

TOKEN = "t0k3n-for-the-browser-tests-0123"  # 32 characters
STUDENT = "Ada Lovelace"
# q1's reference is (out_{o1} - y_1) out_{o1} (1 - out_{o1}) out_{h1}: this answer has the sign flipped.
WRONG_SIGN = r"(y_1 - out_{o1}) out_{o1} (1 - out_{o1}) out_{h1}"
RIGHT_Q4 = r"out_{o1} - y_1"
WAIT = 30  # seconds: the first check starts the worker processes (SymPy's import)
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 directly, never a proxy


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with _opener.open(url, timeout=timeout) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    assignment = tmp / "assignment.toml"
    shutil.copyfile(ROOT / "examples" / "class" / "assignment.toml", assignment)
    token_file = tmp / "teacher.token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    assert len(TOKEN) == 32
    port = _free_port()
    log = open(tmp / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "derive", "serve", "--assignment", str(assignment), "--host", "127.0.0.1",
         "--port", str(port), "--db", str(tmp / "serve.sqlite"), "--token-file", str(token_file),
         "--jobs", "2", "--rate", "0"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    state = {"base": base, "tmp": tmp, "submitted": False}
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                log.flush()
                pytest.fail(f"derive serve exited ({process.returncode}):\n"
                            + (tmp / "server.log").read_text(errors="replace"))
            try:
                if _get(base + "/health") == (200, b"ok"):
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("derive serve did not answer /health within 30 s:\n"
                            + (tmp / "server.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield state
    finally:
        workers = _children(process.pid)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        # The server's pool workers sometimes outlive it (app.py's lifespan shuts the pool down with
        # wait=False), and SIGTERM does not end them (uvicorn's handler, forked into them): kill the ones
        # this server started, by their ids.
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _driver(javascript: bool = True, downloads: Path | None = None):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900",
                     "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-default-apps", "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                     "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    prefs = {}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    if downloads is not None:
        prefs.update({"download.default_directory": str(downloads), "download.prompt_for_download": False,
                      "download.directory_upgrade": True, "safebrowsing.enabled": False})
    if prefs:
        options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT + 15)  # a POST of the form waits for the check
    if downloads is not None:  # headless Chromium ignores the download preference without this
        try:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(downloads)})
        except Exception:
            driver.execute_cdp_cmd("Page.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


@pytest.fixture(scope="module")
def _chromium(server):
    driver = _driver()
    yield driver
    driver.quit()


@pytest.fixture
def browser(_chromium):
    """One Chromium for the module's first tests (each start costs seconds), with an empty console log each.

    They run before the tests with a Chromium of their own: once another Chromium has run, this one's next
    navigation timed out ("Timed out receiving message from renderer")."""
    _chromium.get_log("browser")
    _chromium.set_window_size(1100, 900)
    yield _chromium


def _screenshot(driver, name: str, tmp_path: Path) -> Path:
    """The whole page (the window grown to the document's height), in docs/ under DERIVE_SCREENSHOTS=1."""
    target = ROOT / "docs" / name if os.environ.get("DERIVE_SCREENSHOTS") == "1" else tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(1100, min(max(900, height + 140), 2400))  # 140: the window's own chrome
    driver.execute_script("return document.fonts.ready")
    driver.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert driver.save_screenshot(str(target)), target
    assert target.stat().st_size > 10_000
    driver.set_window_size(1100, 900)
    return target


def _severe(driver, favicon: bool = False) -> list[dict]:
    """The console's errors; without `favicon`, not the 404 of /favicon.ico (see test_no_favicon_404)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
            and (favicon or "/favicon.ico " not in entry["message"])]


def _submit_via_api(base: str) -> None:
    """The student's answer, when test_student_page ran in another process (pytest -n)."""
    body = json.dumps({"question": "q1", "student": STUDENT, "formula": WRONG_SIGN, "syntax": "latex"}).encode()
    request = urllib.request.Request(base + "/api/check", data=body, headers={"Content-Type": "application/json"})
    with _opener.open(request, timeout=WAIT + 15) as response:
        assert json.loads(response.read())["verdict"] == "refuted"


def _ensure_submitted(server) -> None:
    if not server["submitted"]:
        _submit_via_api(server["base"])
        server["submitted"] = True


def test_no_favicon_404(server, browser):
    # first of the module: Chromium asks for the icon once a session (a 404 is remembered)
    browser.get(server["base"] + "/?lang=zh")
    WebDriverWait(browser, WAIT).until(EC.presence_of_element_located((By.ID, "check-form")))
    time.sleep(0.3)  # the icon is asked for after the page's load
    assert _severe(browser, favicon=True) == []


def test_student_page(server, browser, tmp_path):
    driver = browser
    driver.get(server["base"] + "/")
    wait = WebDriverWait(driver, WAIT)
    wait.until(EC.presence_of_element_located((By.ID, "check-form")))
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("derive")

    driver.find_element(By.ID, "student").send_keys(STUDENT)
    Select(driver.find_element(By.ID, "question")).select_by_value("q1")
    Select(driver.find_element(By.ID, "syntax")).select_by_value("latex")
    driver.find_element(By.ID, "formula").send_keys(WRONG_SIGN)

    # the live preview: /static/derive.js posts to /api/preview 250 ms after the last key
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview math msub"))
    preview = driver.find_element(By.ID, "preview")
    assert "unread" not in (preview.get_attribute("class") or "")
    html = preview.get_attribute("innerHTML")
    assert "<math" in html and "<msub>" in html and "<mfrac>" in html  # ∂E/∂w5 = … with out_{o1}
    math = driver.find_element(By.CSS_SELECTOR, "#preview math")
    assert driver.execute_script("return arguments[0].namespaceURI", math) == "http://www.w3.org/1998/Math/MathML"
    assert math.size["width"] > 100 and math.size["height"] > 10  # rendered, not an empty box
    assert "out" in preview.text and "o1" in preview.text

    driver.find_element(By.ID, "check").click()
    result = wait.until(EC.visibility_of_element_located((By.ID, "result")))
    server["submitted"] = True
    assert driver.find_element(By.ID, "verdict").text == "refuted"
    assert "verdict-refuted" in result.get_attribute("class")
    assert "sign" in driver.find_element(By.ID, "diagnosis").text.lower()
    rows = driver.find_elements(By.CSS_SELECTOR, "#counterexample tr")
    assert len(rows) > 3  # the header, the point's values, the derivative and the formula
    assert any("y" in row.text for row in rows)
    # after the POST the form keeps the answer, and the server renders the preview itself
    assert driver.find_element(By.ID, "formula").get_attribute("value") == WRONG_SIGN
    assert driver.find_element(By.ID, "student").get_attribute("value") == STUDENT
    assert driver.find_elements(By.CSS_SELECTOR, "#preview math msub")

    _screenshot(driver, "serve-student.png", tmp_path)
    assert _severe(driver) == []  # no CSP violation, no script error, no failed load


def test_teacher_language_link_keeps_token(server, browser):
    _ensure_submitted(server)
    browser.get(f"{server['base']}/teacher?token={TOKEN}")
    WebDriverWait(browser, WAIT).until(EC.presence_of_element_located((By.ID, "gradebook")))
    browser.find_element(By.ID, "lang").click()
    WebDriverWait(browser, WAIT).until(lambda d: "lang=zh" in d.current_url)
    assert browser.find_elements(By.ID, "gradebook"), browser.find_element(By.TAG_NAME, "body").text[:200]


def test_teacher_summary_counts_answers(server, browser):
    _ensure_submitted(server)  # Ada Lovelace answered q1 only; the no-JavaScript test's answer has no name
    browser.get(f"{server['base']}/teacher?token={TOKEN}")
    summary = WebDriverWait(browser, WAIT).until(EC.presence_of_element_located((By.ID, "summary")))
    line = summary.find_element(By.XPATH, "preceding-sibling::p[1]").text  # "1 · 4 answer · mean 1.00 / 8"
    counted = re.search(r"(\d+) answers?\b", line)
    assert counted and counted.group(1) == "1", line


@pytest.fixture
def downloading(server, tmp_path):
    """A Chromium of its own: after a download, ChromeDriver's next navigation times out in the renderer."""
    downloads = tmp_path / "downloads"
    driver = _driver(downloads=downloads)
    yield driver, downloads
    driver.quit()


def test_teacher_page(server, downloading, tmp_path):
    driver, downloads = downloading
    _ensure_submitted(server)
    driver.get(f"{server['base']}/teacher?token={TOKEN}")
    wait = WebDriverWait(driver, WAIT)
    table = wait.until(EC.visibility_of_element_located((By.ID, "gradebook")))
    rows = [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
            for row in table.find_elements(By.TAG_NAME, "tr")]
    assert rows[0][1:] == ["q1", "q2", "q3", "q4", "total"]
    mine = [row for row in rows if row[0] == STUDENT]
    assert mine == [[STUDENT, "1", "0", "0", "0", "1"]]  # q1 is worth 2; a sign error earns half
    submissions = driver.find_element(By.ID, "submissions").text
    assert STUDENT in submissions and "refuted" in submissions and "sign" in submissions

    _screenshot(driver, "serve-teacher.png", tmp_path)
    assert _severe(driver) == []

    link = driver.find_element(By.ID, "download")
    assert link.get_attribute("href").endswith(f"/teacher/gradebook.csv?token={TOKEN}")
    link.click()
    target = downloads / "gradebook.csv"
    deadline = time.monotonic() + 15
    while not (target.exists() and not list(downloads.glob("*.crdownload"))):
        assert time.monotonic() < deadline, f"no gradebook.csv in {sorted(os.listdir(downloads))}"
        time.sleep(0.1)
    text = target.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "student,q1,q2,q3,q4,total"
    assert [STUDENT, "1", "0", "0", "0", "1"] in list(csv.reader(io.StringIO(text)))
    assert driver.current_url.startswith(f"{server['base']}/teacher")  # a download, not a navigation


def test_page_without_javascript(server):
    driver = _driver(javascript=False)
    try:
        driver.get(server["base"] + "/")
        wait = WebDriverWait(driver, WAIT)
        wait.until(EC.presence_of_element_located((By.ID, "check-form")))
        Select(driver.find_element(By.ID, "question")).select_by_value("q4")
        driver.find_element(By.ID, "formula").send_keys(RIGHT_Q4)
        time.sleep(0.8)  # longer than the script's 250 ms: with JavaScript on, a preview would come
        assert driver.find_elements(By.CSS_SELECTOR, "#preview math") == []  # the script really is off

        driver.find_element(By.ID, "check").click()
        wait.until(EC.visibility_of_element_located((By.ID, "result")))
        assert driver.find_element(By.ID, "verdict").text == "proven"
        assert driver.find_elements(By.ID, "counterexample") == []
        assert Select(driver.find_element(By.ID, "question")).first_selected_option.get_attribute("value") == "q4"
        preview = driver.find_element(By.ID, "preview")
        assert preview.find_elements(By.CSS_SELECTOR, "math msub")  # out_{o1}, y_1: from the server
        assert preview.find_element(By.CSS_SELECTOR, "math").size["width"] > 50
        assert _severe(driver) == []
    finally:
        driver.quit()
