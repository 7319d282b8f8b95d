"""The notebooks and the app as a person meets them: JupyterLab and ``plqa app`` (Voilà) on 127.0.0.1 with a
token, driven in headless Chromium (Debian's ``chromium`` through Playwright, which downloads no browser),
in quick mode.

Per notebook: Run All; no widget error, raw widget repr, error output or console error; every plotly figure
inside its boxes and no label cut off; one slider drag and one dropdown change per explorer update the page (timed
from the mouse release or the selection to the new output: measured, not bounded, as they follow the machine's
load; a hang still fails on the waits' timeouts); the tutorial takes a real photo through its file chooser; 05's
feedback opens with one face region (or says that nothing stands out) and its photo outlines the flagged region.
The app: the page loads asking nothing of other machines, a photo uploads and its map appears, uploads above the
limit (and above the websocket's) and a non-image get the message and the page goes on working, the ICAO tab
outlines the flagged region. Screenshots go to ``$PLQA_SCREENSHOTS`` (README: ``docs/screenshots``), the timings
to ``$PLQA_UI_TIMINGS`` or ``timings.json`` beside the screenshots (``make bench-ui`` makes a table of them).
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the browser fixture skips (fails on CI) without Playwright
    PlaywrightTimeout = TimeoutError

from conftest import REPO, skip_or_fail

CHROMIUM = os.environ.get("PLQA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# hang guards, not speed goals (the speeds are `make bench-ui`'s): four times what the slowest step needs on this 2-core
# machine with one busy process per core beside the suite (`make test-under-load`)
HANG_S = 240
RUN_ALL_S = 600  # one notebook's Run All in quick mode
SHOT_WIDTH = 900  # px: screenshots are scaled down to this width and to 128 colours (small PNGs)
TIMINGS: dict[str, dict[str, float]] = {}  # per page, seconds; "machine": CPU count and load averages
# the violation whose feedback and outline are checked: sunglasses cover the eyes, one region
OUTLINED_VIOLATION = "sunglasses"
REGIONS = ("eyes", "nose", "mouth", "forehead", "cheeks")
NOTHING_STANDS_OUT = "Nothing stands out against compliant faces"

# JavaScript run in the page. PROBLEMS lists what a person would trip over in ``root``; SIGNATURE is the text of
# the explorers' output areas (not of their controls, whose readouts change before the kernel answers).
PROBLEMS = """root => {
  const bad = [];
  const text = root.innerText;
  for (const s of ["Error displaying widget", "HBox(", "VBox(", "Tab(children", "Traceback"])
    if (text.includes(s)) bad.push("text: " + s);
  for (const el of root.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'))
    if (/Error/.test(el.textContent)) bad.push("error output: " + el.textContent.slice(0, 200));
  for (const p of root.querySelectorAll('.js-plotly-plot')) {
    const svg = p.querySelector('.main-svg');
    if (!svg) { bad.push("plotly figure not drawn"); continue; }
    const r = svg.getBoundingClientRect();
    if (r.width === 0) continue;  // in a hidden tab: measured when shown
    const title = (p.querySelector('.gtitle') || {}).textContent || "untitled";
    for (let a = p.parentElement; a && a !== root.parentElement; a = a.parentElement) {
      const b = a.getBoundingClientRect();
      if (r.right > b.right + 1 || r.left < b.left - 1) {
        bad.push(`figure "${title}" (${Math.round(r.width)} px) exceeds ${a.className.split(' ')[0] || a.tagName} ` +
                 `(${Math.round(b.width)} px)`);
        break;
      }
    }
  }
  for (const el of root.querySelectorAll('.widget-label, .lm-TabBar-tabLabel, .widget-toggle-button'))
    if (el.offsetWidth > 0 && el.scrollWidth > el.clientWidth + 1) bad.push("label cut off: " + el.textContent);
  return bad;
}"""
SIGNATURE = """root => [...root.querySelectorAll('.widget-output')].map(o => o.textContent).join('|')"""
# the feedback paragraphs' text after their "Feedback:" label
FEEDBACK = """root => [...root.querySelectorAll('p')]
  .filter(p => p.innerHTML.trim().startsWith('<b>Feedback:</b>'))
  .map(p => p.textContent.trim().slice('Feedback:'.length).trim())"""
# the names of the traces of every plotly figure in root
TRACES = """root => [...root.querySelectorAll('.js-plotly-plot')].flatMap(p => (p.data || []).map(t => t.name))"""
SETTLED = """([root, before]) => {
  const now = [...root.querySelectorAll('.widget-output')].map(o => o.textContent).join('|');
  const plots = [...root.querySelectorAll('.widget-output .js-plotly-plot')];
  return now !== before && plots.length > 0 && plots.every(p => p.querySelector('.gtitle'));
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 360) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port} after {seconds} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Playwright (skipped without them, failed on CI)."""
    if not CHROMIUM:
        skip_or_fail("chromium not found (apt-get install chromium, or set PLQA_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (make installs it)")
    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    yield chromium
    chromium.close()
    pw.stop()


@pytest.fixture(scope="module")
def server_env(faces_dir, tmp_path_factory) -> dict[str, str]:
    """The servers' environment: quick mode, the photos, Jupyter folders of their own (JupyterLab without
    notebook windowing, so that every output is in the page, and without news)."""
    root = tmp_path_factory.mktemp("jupyter")
    settings = root / "settings"
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                                           "checkForUpdates": False}}.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return {**os.environ, "PLQA_QUICK": "1", "PLQA_FACES": str(faces_dir), "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"), "JUPYTER_CONFIG_DIR": str(root / "config"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime")}


@pytest.fixture(scope="module")
def lab(server_env, tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, serving copies of the notebooks (its autosave never touches the
    repository); yields the base address with the token."""
    folder = tmp_path_factory.mktemp("notebooks")
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, folder)
    port, token = _free_port(), secrets.token_hex(16)
    yield from _serve("jupyterlab", [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                       f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                       f"--ServerApp.root_dir={folder}", "--allow-root"], server_env, folder, port, token)


def _serve(name: str, command: list[str], env: dict, cwd, port: int, token: str):
    """Run server ``name`` until the generator is closed; yields (address, token) once its port answers. Its log
    goes to ``$PLQA_SERVER_LOGS/NAME.log`` (default: discarded)."""
    logs = os.environ.get("PLQA_SERVER_LOGS")
    log = open(Path(logs) / f"{name}.log", "w") if logs else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", token
    finally:
        _stop(process)
        if logs:
            log.close()


@pytest.fixture(scope="module")
def app_server(server_env, tmp_path_factory):
    """``plqa app`` on a free port with a token, in a folder of its own with a temporary folder of its own;
    yields (address, token). Once stopped, it must have left nothing in either (uploads stay in memory)."""
    port, token = _free_port(), secrets.token_hex(16)
    cwd, tmp = tmp_path_factory.mktemp("app"), tmp_path_factory.mktemp("app_tmp")
    yield from _serve("app", [sys.executable, "-m", "plqa_nb.cli", "app", "--port", str(port), "--token", token],
                      {**server_env, "TMPDIR": str(tmp)}, cwd, port, token)
    assert not list(cwd.iterdir()) and not list(tmp.glob("plqa-app-*"))


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go: ``$PLQA_SCREENSHOTS`` or a temporary folder; at the end the module's timings, with
    the machine's CPU count and load averages (1 min) before and after, are written to ``$PLQA_UI_TIMINGS`` or
    timings.json beside the screenshots, and printed."""
    folder = Path(os.environ.get("PLQA_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    TIMINGS["machine"] = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg()[0]}
    yield folder
    TIMINGS["machine"]["load_after"] = os.getloadavg()[0]
    path = Path(os.environ.get("PLQA_UI_TIMINGS") or folder / "timings.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TIMINGS, indent=1) + "\n")
    print("\nbrowser timings (s):", json.dumps(TIMINGS, indent=1))


def _stop_kernels(base: str, token: str) -> None:
    """Shut down every kernel of the server (each notebook's test starts its own; idle ones only use memory)."""
    headers = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels", headers=headers), timeout=HANG_S) as r:
        kernels = json.load(r)
    for k in kernels:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{k['id']}", headers=headers,
                                                      method="DELETE"), timeout=HANG_S)


@pytest.fixture
def page(browser):
    """A fresh page; console errors and uncaught exceptions are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda msg: pg.errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    yield pg
    context.close()


def _screenshot(locator, path: Path) -> None:
    """A small PNG of ``locator``: scaled to ``SHOT_WIDTH`` and 128 colours."""
    image = Image.open(io.BytesIO(locator.screenshot())).convert("RGB")
    if image.width > SHOT_WIDTH:
        image = image.resize((SHOT_WIDTH, round(image.height * SHOT_WIDTH / image.width)), Image.LANCZOS)
    image.quantize(colors=128).save(path, optimize=True)


def _problems(root) -> list[str]:
    return root.evaluate(PROBLEMS)


def _timed(page, root, action, timeout_s: float = HANG_S) -> float:
    """Seconds from ``action()`` until the explorer's outputs in ``root`` changed and their figures are drawn."""
    before = root.evaluate(SIGNATURE)
    t0 = time.perf_counter()
    action()
    page.wait_for_function(SETTLED, arg=[root.element_handle(), before], timeout=timeout_s * 1000)
    return time.perf_counter() - t0


def _slider(root, label: str):
    return root.locator(".widget-slider").filter(has=root.page.locator(".widget-label", has_text=re.compile(
        f"^{re.escape(label)}$")))


def _drag(page, root, label: str, dx: float = 40) -> None:
    """Drag slider ``label``'s handle by ``dx`` px with the mouse, towards the middle of its track."""
    slider = _slider(root, label)
    slider.scroll_into_view_if_needed()  # an explorer taller than the window: the mouse acts on what is in view
    box, track = slider.locator(".noUi-handle").bounding_box(), slider.locator(".noUi-target").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    dx = dx if x < track["x"] + track["width"] / 2 else -dx
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()


def _dropdown(root, label: str):
    return root.locator(".widget-dropdown").filter(has=root.page.locator(".widget-label", has_text=re.compile(
        f"^{re.escape(label)}$"))).locator("select")


def _choose(root, label: str, index: int | None = None, option: str | None = None):
    """A function selecting option ``option`` (or the one at ``index``) of dropdown ``label``."""
    select = _dropdown(root, label)
    return lambda: select.select_option(label=option) if option else select.select_option(index=index)


def _upload(page, button, path: Path) -> None:
    """Press an upload ``button`` and pick ``path`` in the file chooser, as a person would."""
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(path)


PROMPTS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent)"""
# Run All took effect: a cell is queued or running ([*]) or has run ([n])
RUN_ALL_STARTED = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
  .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))"""
RUN_ALL_DONE = """() => {
  const p = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
  const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
  return p.every(e => /\\[\\d+\\]/.test(e.textContent)) || (idle && !p.some(e => e.textContent.includes('*')));
}"""


def _kernel_idle(base: str, token: str, name: str) -> None:
    """Wait until the server's session of notebook ``name`` has a kernel that is idle (started and answering)."""
    headers = {"Authorization": f"token {token}"}
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/api/sessions", headers=headers),
                                    timeout=HANG_S) as r:
            if any(s["path"].endswith(name) and (s.get("kernel") or {}).get("execution_state") == "idle"
                   for s in json.load(r)):
                return
        time.sleep(0.5)
    pytest.fail(f"the kernel of {name} was not idle within {HANG_S} s")


def _accept_kernel_dialog(page) -> bool:
    """Accept JupyterLab's "Select Kernel" dialog if it is open (its default is the notebook's own kernel: a Run
    All that reaches a notebook whose kernel is still connecting opens it); whether it was open."""
    dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    if not dialog.count():
        return False
    dialog.locator(".jp-Dialog-footer button.jp-mod-accept").click()
    return True


def _run_all(page, base: str, token: str, name: str) -> float:
    """Open notebook ``name`` alone (a reset workspace), wait for its kernel, Run All and wait until the kernel
    stops: every cell ran, or one failed (then the failure is in the assertion); the seconds Run All took."""
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=HANG_S * 1000)
    _kernel_idle(base, token, name)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=HANG_S * 1000)
    for attempt in range(3):  # Run All is disabled until the notebook is the active widget: focus it, retry
        page.locator(".jp-Notebook .jp-InputPrompt").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
        t0 = time.perf_counter()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
        try:
            page.wait_for_function(RUN_ALL_STARTED, timeout=30_000)  # a missed click: retried
            break
        except PlaywrightTimeout:
            if not _accept_kernel_dialog(page):
                page.keyboard.press("Escape")
            _kernel_idle(base, token, name)
    else:
        pytest.fail(f"Run All did not start the kernel of {name}")
    page.wait_for_function(RUN_ALL_DONE, timeout=RUN_ALL_S * 1000)
    seconds = time.perf_counter() - t0
    page.wait_for_timeout(1500)  # widget views and figures render after the kernel's last reply
    prompts = page.evaluate(PROMPTS)
    failed = page.locator(".jp-Notebook [data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts), (prompts, failed)
    return seconds


def _explorer(page, label: str):
    """The output area of the notebook cell whose widgets include a control labelled ``label``."""
    return page.locator(".jp-Cell-outputArea").filter(has=page.locator(".widget-label", has_text=re.compile(
        f"^{re.escape(label)}$"))).last


def _check_page(page) -> None:
    notebook = page.locator(".jp-Notebook")
    assert _problems(notebook) == []
    assert page.errors == []


# (notebook, explorer control, slider to drag, dropdown label and the option index to choose; the masking
# explorer's only dropdown is the face, which analyses a new face)
NOTEBOOKS = [
    ("01_tutorial.ipynb", "γ", "γ", ("estimator", None)),
    ("03_inpainting.ipynb", "level", "level", ("fill", 1)),
    ("04_random_masking.ipynb", "size (px)", "x", ("face", 2)),
    ("05_icao.ipynb", "violation", "strength", ("violation", 1)),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, control, slider, dropdown", NOTEBOOKS, ids=[n[0] for n in NOTEBOOKS])
def test_notebook_explorer_in_the_browser(page, lab, shots, faces_dir, name, control, slider, dropdown):
    _stop_kernels(*lab)
    timing = TIMINGS.setdefault(name, {})
    timing["run_all_s"] = _run_all(page, *lab, name)
    _check_page(page)
    root = _explorer(page, control)
    _screenshot(root, shots / name.replace(".ipynb", ".png"))
    timing["slider_s"] = _timed(page, root, lambda: _drag(page, root, slider))
    label, index = dropdown
    timing["new_face_s" if label == "face" else "dropdown_s"] = _timed(
        page, root, _choose(root, label, index, "serfiq" if index is None else None))
    if name.startswith("01"):
        _tutorial_tabs_and_upload(page, root, faces_dir, timing)
    if name.startswith("03"):
        _inpainting_modes(page, root, timing)
    if name.startswith("05"):
        _flagged_region(page, root)
    _check_page(page)


def _outlined(page, root) -> None:
    """Choose ``OUTLINED_VIOLATION`` in ``root``'s ICAO explorer (unless chosen already); its photo then carries
    the outline of the flagged region (a plotly trace named "flagged region")."""
    if _dropdown(root, "violation").evaluate("s => s.options[s.selectedIndex].text") != OUTLINED_VIOLATION:
        _timed(page, root, _choose(root, "violation", option=OUTLINED_VIOLATION))
    assert "flagged region" in root.evaluate(TRACES), root.evaluate(TRACES)


def _feedback_regions(root) -> tuple[str, list[str]]:
    """The first clause of the explorer's feedback (before its first ':' or '.') and the face regions it names."""
    feedback = root.evaluate(FEEDBACK)
    assert len(feedback) == 1, feedback
    clause = re.split(r"[:.]", feedback[0], maxsplit=1)[0].strip()
    return clause, [r for r in REGIONS if re.search(rf"\b{r}\b", clause)]


def _flagged_region(page, root) -> None:
    """05's feedback opens with one face region, or says that nothing stands out; ``OUTLINED_VIOLATION`` flags
    one, outlined on the photo."""
    clause, named = _feedback_regions(root)  # the violation the dropdown's timing chose
    assert clause == NOTHING_STANDS_OUT or len(named) == 1, clause
    _outlined(page, root)
    clause, named = _feedback_regions(root)
    assert len(named) == 1, clause


def _tutorial_tabs_and_upload(page, root, faces_dir: Path, timing: dict) -> None:
    for tab in ("steps", "numbers", "PLQ map"):
        root.locator(".lm-TabBar-tab", has_text=tab).first.click()
        page.wait_for_timeout(500)
        assert _problems(root) == [], tab
    photo = faces_dir / "london" / "neutral" / "012.jpg"
    timing["upload_s"] = _timed(page, root, lambda: _upload(page, root.locator(".widget-upload"), photo))
    assert "upload: 012.jpg" in root.locator(".widget-output .gtitle").first.text_content()


def _inpainting_modes(page, root, timing: dict) -> None:
    """Only the active mode's sliders are enabled, and a result is cleared when the mask changes."""
    def disabled(label: str) -> bool:
        return _slider(root, label).locator(".noUi-target[disabled]").count() == 1

    assert not disabled("level") and disabled("x")
    timing["score_s"] = _timed(page, root, lambda: root.get_by_role("button", name="inpaint and score").click())
    assert "after" in root.locator(".widget-output").last.text_content()
    root.get_by_role("radio", name="rectangle").or_(root.get_by_role("button", name="rectangle")).click()
    page.wait_for_function("root => !root.querySelectorAll('.widget-output')[1].textContent.includes('after')",
                           arg=root.element_handle(), timeout=HANG_S * 1000)
    assert disabled("level") and not disabled("x")


BUTTON_NOTEBOOKS = [("02_attribution_comparison.ipynb", "random orders", "compare"),
                    ("06_quality_utility.ipynb", "probes", "evaluate")]


@pytest.mark.slow
@pytest.mark.parametrize("name, control, button", BUTTON_NOTEBOOKS, ids=[n[0] for n in BUTTON_NOTEBOOKS])
def test_button_explorer_in_the_browser(page, lab, shots, name, control, button):
    """The explorers that compute on a button: Run All, then the button shows its result."""
    _stop_kernels(*lab)
    timing = TIMINGS.setdefault(name, {})
    timing["run_all_s"] = _run_all(page, *lab, name)
    _check_page(page)
    root = _explorer(page, control)
    timing["button_s"] = _timed(page, root, lambda: root.get_by_role("button", name=button).click(), timeout_s=2 * HANG_S)
    page.wait_for_timeout(500)
    _check_page(page)
    _screenshot(page.locator(".jp-NotebookPanel"), shots / name.replace(".ipynb", ".png"))


@pytest.mark.slow
def test_app_in_the_browser(page, app_server, shots, faces_dir, tmp_path):
    base, token = app_server
    with urllib.request.urlopen(f"{base}/", timeout=HANG_S) as response:  # without the token: the login form
        assert "/login" in response.geturl() and "plqa_nb" not in response.read().decode()
    timing = TIMINGS.setdefault("plqa app", {})
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    t0 = time.perf_counter()
    page.goto(f"{base}/?token={token}", timeout=2 * HANG_S * 1000)
    page.wait_for_selector(".widget-output .js-plotly-plot .gtitle", timeout=2 * HANG_S * 1000)
    timing["page_load_s"] = time.perf_counter() - t0
    page.wait_for_timeout(1000)
    body = page.locator("body")
    assert "import" not in body.inner_text()  # no code on the page
    assert _problems(body) == [] and page.errors == []
    root = page.locator(".widget-tab").first.locator(".widget-vbox").first
    _screenshot(page.locator("body"), shots / "app.png")
    chooser = page.locator(".widget-upload").first
    timing["upload_s"] = _timed(page, root, lambda: _upload(page, chooser, faces_dir / "london" / "neutral" / "012.jpg"))
    assert "upload: 012.jpg" in root.locator(".widget-output .gtitle").first.text_content()
    _refusals(page, chooser, tmp_path)
    # the page goes on working: the next photo gets its map
    _timed(page, root, lambda: _upload(page, chooser, faces_dir / "london" / "neutral" / "013.jpg"))
    assert "upload: 013.jpg" in root.locator(".widget-output .gtitle").first.text_content()
    page.locator(".lm-TabBar-tab", has_text="ICAO check").click()
    page.wait_for_timeout(1000)
    _outlined(page, page.locator(".widget-vbox").filter(has=page.locator(".widget-label", has_text=re.compile(
        "^violation$"))).last)  # the innermost box with the ICAO explorer's controls: the explorer
    assert _problems(body) == [] and page.errors == []
    elsewhere = [u for u in requests if urllib.parse.urlsplit(u).scheme not in ("data", "blob")
                 and urllib.parse.urlsplit(u).hostname != "127.0.0.1"]
    assert requests and elsewhere == []  # nothing asked of another machine


def _refusals(page, chooser, folder: Path) -> None:
    """Files above the upload limit, one also above the websocket's message limit, and a file that is not a
    photo: each gets its message."""
    for name, mb in (("big.jpg", 21), ("huge.jpg", 100)):
        with open(folder / name, "wb") as f:  # a JPEG's first bytes, the rest a hole (sparse, written at once)
            f.write(b"\xff\xd8\xff")
            f.truncate(mb * 2**20)
        _upload(page, chooser, folder / name)
        page.get_by_text(f"“{name}” is {mb:.1f} MB; photos up to 20 MB are accepted").wait_for(timeout=HANG_S * 1000)
    text = folder / "notes.png"
    text.write_text("not a photo")
    _upload(page, chooser, text)
    page.get_by_text("is not a photo this page can read").wait_for(timeout=HANG_S * 1000)
