"""A notebook as a person uses it: JupyterLab serves a small notebook, headless Chromium opens it and runs
it, the widget draws as controls, and one click on a control changes the picture.

The notebook (written to pytest's temporary folder) builds a tiny LLaVA from a config and shows a
`KeywordPicker`: one toggle button per keyword and the heatmap as an image. The browser is driven over the
DevTools protocol (a websocket, `websocket-client`); the server listens on 127.0.0.1 with a random token
and its own throw-away Jupyter folders, and nothing is downloaded.

Where no browser is on PATH the test is skipped, before the server starts, with a one-line hint to install
one. Set `EGOKIT_REQUIRE_BROWSER=1` (as CI does where it has a browser) to make a missing browser a failure
instead of a skip.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import websocket
from browsers import REQUIRE_BROWSER
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic", "--hide-scrollbars",
                  "--window-size=1400,1000")
NOTEBOOK = "keyword_picker.ipynb"
KEYWORDS = ["red", "striped", "circle"]
CELL = f"""\
import torch

from egokit.data.shapesworld import ShapesWorld
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny
from egokit.widgets import KeywordPicker

torch.set_num_threads(1)
world = ShapesWorld(seed=0, split="test")
reference = world.reference_views(world.concepts(1)[0], 1, clutter=True)[0]
model = from_model(*build_tiny("llava"), name="tiny-llava")
KeywordPicker(model, reference, name="bix", keywords={KEYWORDS!r}, budget=0.2)
"""
SERVER_START_S, PAGE_S, RUN_S, CLICK_S = 90, 90, 120, 45

pytestmark = pytest.mark.slow


def wait_for(what: str, check: Callable[[], Any], timeout: float, *, interval: float = 0.25,
             details: Callable[[], str] = lambda: "") -> Any:
    """Poll `check` until it returns something true; fail with `what` and `details()` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{details()}", pytrace=False)
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a process started in its own session, and everything it started (kernels, renderers)."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    try:  # the leader may be gone while children of its group linger
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Lab:
    url: str
    token: str
    log: Path


@pytest.fixture
def lab(browser: str, tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 (a free port, a random token) serving a folder with the test notebook; stopped
    afterwards, kernels included. `browser` comes first: no browser, no server."""
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("A keyword picker over a tiny model."),
                nbformat.v4.new_code_cell(CELL)]
    nbformat.write(nb, root / NOTEBOOK)
    # Jupyter's own folders are throw-away ones (nothing of the user's is read or written); the kernel is
    # this interpreter, whatever `python` is on PATH.
    jupyter = {name: tmp_path / "jupyter" / name for name in ("config", "data", "runtime", "settings",
                                                              "workspaces", "ipython")}
    kernel_dir = jupyter["data"] / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg",
           "JUPYTER_CONFIG_DIR": str(jupyter["config"]), "JUPYTER_DATA_DIR": str(jupyter["data"]),
           "JUPYTER_RUNTIME_DIR": str(jupyter["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(jupyter["settings"]),
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter["workspaces"]), "IPYTHONDIR": str(jupyter["ipython"])}
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run the notebook's cells by command
           "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({proc.returncode}) before it served:\n{tail(log)}", pytrace=False)
            try:
                req = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(f"JupyterLab to serve on {url}", up, SERVER_START_S, details=lambda: tail(log))
        yield Lab(url=url, token=token, log=log)
    finally:
        stop(proc)


class DevTools:
    """Just enough of the Chrome DevTools protocol: call a method, evaluate JavaScript, click a point."""

    def __init__(self, ws_url: str) -> None:
        # no Origin header: Chromium refuses DevTools websockets from other origins
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.last = 0

    def call(self, method: str, **params: Any) -> dict:
        self.last += 1
        self.ws.send(json.dumps({"id": self.last, "method": method, "params": params}))
        while True:  # events (none are enabled) and stale replies are passed over
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.last:
                if "error" in msg:
                    raise RuntimeError(f"DevTools {method} failed: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises are awaited)."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(f"JavaScript failed: {d.get('exception', {}).get('description', d.get('text'))}")
        return r["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A real left click (move, press, release) at a point of the page, as a mouse gives it."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def page(browser: str, tmp_path: Path) -> Iterator[DevTools]:
    """A blank page in headless Chromium (a fresh profile), driven over DevTools; closed afterwards."""
    profile = tmp_path / "browser-profile"  # a throw-away profile: nothing of the user's is touched
    log = tmp_path / "chromium.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 "about:blank"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    tools = None
    try:
        active = profile / "DevToolsActivePort"  # Chromium writes the port it chose here

        def port() -> int | None:
            if proc.poll() is not None:
                pytest.fail(f"{browser} exited ({proc.returncode}) at start:\n{tail(log)}", pytrace=False)
            lines = active.read_text().split() if active.is_file() else []
            return int(lines[0]) if len(lines) >= 2 else None

        devtools_port = wait_for("Chromium's DevTools port", port, 60, details=lambda: tail(log))

        def page_target() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=5) as r:
                    targets = json.load(r)
            except OSError:
                return None
            return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)

        tools = DevTools(wait_for("Chromium's page", page_target, 30, details=lambda: tail(log)))
        yield tools
    finally:
        if tools is not None:
            tools.close()
        stop(proc, timeout=10)


# What the page shows of the notebook's widget output: the toggle buttons (text, pressed or not), whether the
# other controls are there, the picture, and any error or stand-in text instead of a drawn widget.
STATE_JS = """(() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return {notebook: false};
  const outputs = [...nb.querySelectorAll('.jp-OutputArea-output')];
  const widget = outputs.map(o => o.querySelector('.widget-vbox')).find(Boolean);
  const state = {notebook: true,
    errors: outputs.filter(o => o.dataset.mimeType === 'application/vnd.jupyter.stderr')
                   .map(o => o.innerText.slice(-1500)),
    text: outputs.map(o => o.innerText.slice(0, 200)).join(' | ')};
  if (!widget) return state;
  const img = widget.querySelector('img.widget-image');
  const rect = img ? img.getBoundingClientRect() : null;
  return {...state, widget: true,
    buttons: [...widget.querySelectorAll('button.widget-toggle-button')].map(
      b => ({text: b.innerText.trim(), on: b.classList.contains('mod-active')})),
    slider: !!widget.querySelector('.widget-slider'),
    dropdown: !!widget.querySelector('.widget-dropdown select'),
    picture: img ? {src: img.src, complete: img.complete, width: img.naturalWidth,
                    shown: rect.width > 0 && rect.height > 0} : null};
})()"""

PICTURE_BYTES_JS = """(async () => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const img = nb.querySelector('.jp-OutputArea-output .widget-vbox img.widget-image');
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
})()"""

BUTTON_CENTRE_JS = """((text) => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const b = [...nb.querySelectorAll('.jp-OutputArea-output .widget-vbox button.widget-toggle-button')]
    .find(b => b.innerText.trim() === text);
  b.scrollIntoView({block: 'center'});
  const r = b.getBoundingClientRect();
  return [r.left + r.width / 2, r.top + r.height / 2];
})"""


def picture(page: DevTools) -> tuple[str, np.ndarray]:
    """The widget's picture as the page holds it: its src and its decoded pixels."""
    src = page.js(STATE_JS)["picture"]["src"]
    data = base64.b64decode(page.js(PICTURE_BYTES_JS))
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"the widget's picture is not a PNG: {data[:16]!r}"
    with Image.open(io.BytesIO(data)) as img:
        return src, np.asarray(img.convert("RGB"))


def test_notebook_widget_in_a_real_browser(browser: str, lab: Lab, page: DevTools) -> None:
    page.call("Emulation.setFocusEmulationEnabled", enabled=True)  # a headless page never has the focus
    page.call("Page.navigate", url=f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
    server_log = lambda: f"JupyterLab log:\n{tail(lab.log)}"  # noqa: E731

    # The notebook is open and its kernel is up (JupyterLab's own app object: expose_app_in_browser).
    opened = """(() => {
      const app = window.jupyterapp;
      const panel = app && [...app.shell.widgets('main')].find(w => w.context && w.context.path === PATH);
      if (panel && app.shell.currentWidget !== panel) app.shell.activateById(panel.id);  // run-all acts on it
      const session = panel && panel.sessionContext && panel.sessionContext.session;
      return {app: !!app, title: document.title, path: panel && panel.context ? panel.context.path : null,
              ready: !!(panel && panel.context && panel.context.isReady),
              kernel: session && session.kernel ? session.kernel.status : null,
              current: !!panel && app.shell.currentWidget === panel};
    })()""".replace("PATH", json.dumps(NOTEBOOK))
    seen: list = [None]

    def notebook_ready() -> bool:
        try:
            seen[0] = page.js(opened)
        except RuntimeError as e:  # the page is still loading
            seen[0] = str(e)
            return False
        return isinstance(seen[0], dict) and seen[0] == {**seen[0], "path": NOTEBOOK, "ready": True, "kernel": "idle", "current": True}

    wait_for(f"JupyterLab to open {NOTEBOOK} with an idle kernel", notebook_ready, PAGE_S, interval=0.5,
             details=lambda: f"page shows: {seen[0]}\n{server_log()}")

    page.js("void window.jupyterapp.commands.execute('notebook:run-all-cells'), true")

    def drawn() -> dict | None:
        state = page.js(STATE_JS)
        if any("Traceback" in e for e in state.get("errors", [])):
            pytest.fail("the notebook's cell failed:\n" + "\n".join(state["errors"]), pytrace=False)
        pic = state.get("picture")
        ok = state.get("widget") and len(state["buttons"]) == len(KEYWORDS) and pic and pic["complete"] and pic["width"]
        return state if ok else None

    state = wait_for("the KeywordPicker to draw as controls with a picture", drawn, RUN_S, interval=0.5,
                     details=lambda: f"page shows: {page.js(STATE_JS)}\n{server_log()}")
    # controls, not the widget's text stand-in: a pressed toggle per keyword, the budget slider, a dropdown
    assert state["buttons"] == [{"text": k, "on": True} for k in KEYWORDS], state
    assert state["slider"] and state["dropdown"], f"the widget's slider or dropdown did not draw: {state}"
    assert state["picture"]["shown"], f"the widget's picture has no size on the page: {state}"
    before_src, before = picture(page)
    assert before.std() > 5, "the widget's picture is (nearly) blank"

    x, y = page.js(f"{BUTTON_CENTRE_JS}({json.dumps(KEYWORDS[0])})")
    page.click(x, y)

    def changed() -> dict | None:
        s = page.js(STATE_JS)
        return s if s["picture"]["src"] != before_src and s["picture"]["complete"] and s["picture"]["width"] else None

    after_state = wait_for(f"the picture to change after clicking {KEYWORDS[0]!r}", changed, CLICK_S,
                           details=lambda: f"page shows: {page.js(STATE_JS)}\n{server_log()}")
    assert after_state["buttons"][0] == {"text": KEYWORDS[0], "on": False}, after_state["buttons"]
    assert all(b["on"] for b in after_state["buttons"][1:]), after_state["buttons"]
    _, after = picture(page)
    assert after.shape == before.shape, (before.shape, after.shape)
    differ = np.abs(after.astype(int) - before.astype(int)).max(-1) > 0
    assert differ.mean() > 0.001, f"the picture's pixels hardly changed after the click ({differ.mean():.5f})"


def run_without_browser(require: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), REQUIRE_BROWSER: require}
    test = f"{Path(__file__).resolve()}::test_notebook_widget_in_a_real_browser"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", test],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_without_a_browser_it_is_skipped_with_a_hint():
    """A machine with no browser on PATH: the browser test is skipped (not failed), before JupyterLab starts."""
    r = run_without_browser("")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 skipped" in r.stdout and "apt-get install chromium" in r.stdout, r.stdout[-3000:]
    hint = [line for line in r.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(hint) == 1 and "no headless Chromium found on PATH" in hint[0], r.stdout[-3000:]


def test_without_a_browser_it_fails_when_one_is_required():
    """With EGOKIT_REQUIRE_BROWSER set (CI where a browser was installed) a missing browser is an error."""
    r = run_without_browser("1")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 error" in r.stdout and "1 skipped" not in r.stdout and f"{REQUIRE_BROWSER} is set" in r.stdout, r.stdout[-3000:]
