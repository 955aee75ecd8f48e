"""Notebook 06 in JupyterLab, driven in headless Chromium as a researcher would use it.

Needs a Chromium on the machine (Debian: ``apt-get install -y chromium``; another binary via
``$DCLIP_CHROMIUM``) and the ``dclip`` Jupyter kernel (``make setup``); Playwright drives it, nothing is
downloaded. Without a Chromium the test is skipped with a message, unless ``DCLIP_REQUIRE_BROWSER=1``
(CI) makes that a failure. JupyterLab runs on a free localhost port with a random token, on a temporary
copy of the notebook with its own home, runtime and settings folders, and is stopped by its process id.
On failure a screenshot and the server log go to ``.cache/browser-test/``.
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from dclip.dev.figures import CHECKED_PROFILE

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "06_live_editor.ipynb"
ARTIFACTS = REPO / ".cache" / "browser-test"
SCREENSHOT = ARTIFACTS / "failure.png"
# the options of the git filter `make setup` installs (nbstripout keeps the cells marked keep_output)
NBSTRIPOUT = [sys.executable, "-m", "nbstripout", "--keep-id"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def find_chromium() -> str | None:
    named = os.environ.get("DCLIP_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _skip_or_fail(reason: str):
    if os.environ.get("DCLIP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (DCLIP_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(f"browser test skipped: {reason}", allow_module_level=True)


CHROMIUM = find_chromium()
if CHROMIUM is None:
    _skip_or_fail("no Chromium found (Debian: apt-get install -y chromium, or set DCLIP_CHROMIUM=/path)")
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    _skip_or_fail("the playwright package is missing (make setup installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


class Lab:
    """A JupyterLab server in its own process group on a temporary root folder."""

    def __init__(self, base: Path):
        self.root, self.port, self.token = base / "root", free_port(), secrets.token_hex(16)
        self.root.mkdir()
        shutil.copy(REPO / "notebooks" / NOTEBOOK, self.root / NOTEBOOK)
        settings = base / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)  # no news or update checks: nothing leaves the machine
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = {**os.environ, "HOME": str(base / "home"), "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
               "JUPYTER_DATA_DIR": str(base / "data"), "JUPYTER_CONFIG_DIR": str(base / "config"),
               "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "ws"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               # what `make test-notebooks` runs the notebooks at; figures stay out of the source tree
               "DCLIP_PROFILE": CHECKED_PROFILE, "DCLIP_PROGRESS": "0", "HF_HUB_OFFLINE": "1",
               "DCLIP_FIGURES_DIR": str(base / "figures")}
        jupyter = Path(sys.executable).parent / "jupyter"
        cmd = [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log_path = base / "server.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # its kernels share its process group
        self.url = f"http://127.0.0.1:{self.port}/lab/tree/{NOTEBOOK}?token={self.token}"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.server_log()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.server_log()}")

    def server_log(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to the server's process group (server and kernels), SIGKILL if it lingers."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        try:  # kernels that outlived the server
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


class Session:
    """The page, plus every kernel error message the page received over its websockets."""

    ERROR = re.compile(rb'"msg_type":\s*"error"')

    def __init__(self, page):
        self.page, self.kernel_errors, self.page_errors = page, [], []
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))

    def _frame(self, payload) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        if self.ERROR.search(data):
            text = data.decode("utf-8", "replace")
            name, value = (re.search(rf'"{key}":\s*"((?:[^"\\]|\\.)*)"', text) for key in ("ename", "evalue"))
            self.kernel_errors.append(f"{name.group(1)}: {value.group(1)}" if name and value else text[-1000:])

    def editor(self, name: str):
        return self.page.locator(f".dclip-{name}")

    def status(self) -> str:
        return self.editor("status").inner_text()

    def image(self, name: str) -> str:
        """SHA-256 of the PNG an editor image shows (fetched from its data/blob URL)."""
        data = self.editor(name).evaluate(
            "async el => Array.from(new Uint8Array(await (await fetch(el.src)).arrayBuffer()))")
        return hashlib.sha256(bytes(data)).hexdigest()

    def wait_status(self, pattern: str, timeout: float = 60.0, stale: str | None = None) -> str:
        """Wait for the status line to match ``pattern``; an error it does not expect (other than the
        ``stale`` one shown before the action) fails at once."""
        deadline, status = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            if self.kernel_errors:  # a cell or a widget callback raised
                raise AssertionError(f"kernel error messages: {self.kernel_errors}")
            status = self.status() if self.editor("status").count() else "(no editor yet)"
            if re.search(pattern, status):
                return status
            if status.startswith("error") and not pattern.startswith("^error") and status != stale:
                raise AssertionError(f"the status line shows an error: {status!r}")
            time.sleep(0.2)
        raise AssertionError(f"the status line never matched {pattern!r}; it reads {status!r}")

    def wait_image_change(self, name: str, before: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.image(name)
            if now != before:
                return now
            time.sleep(0.2)
        raise AssertionError(f"the {name} image did not change (status: {self.status()!r})")

    def set_slider(self, locator, value: float) -> None:
        """Type a value into a slider's editable readout, as a person can."""
        readout = locator.locator(".widget-readout")
        readout.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(f"{value}")
        self.page.keyboard.press("Enter")

    def upload(self, name: str, mime: str, data: bytes) -> None:
        with self.page.expect_file_chooser() as chooser:
            self.editor("upload").click()
        chooser.value.set_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


@pytest.fixture(scope="module")
def lab():
    base = Path(tempfile.mkdtemp(prefix="dclip-lab-"))
    server = Lab(base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def png(color) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, format="PNG")
    return buffer.getvalue()


def drive_the_editor(s: Session) -> None:
    page = s.page
    page.goto(s.url)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=90_000)  # the kernel started
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()

    # Run All: the editor opens on the sample photo with no fine-tuned model (none the user did not ask for)
    assert s.wait_status("^weights", timeout=120) == "weights: original 1"
    expect(s.editor("gamma-box").locator(".widget-slider")).to_have_count(0)
    s.editor("picker").scroll_into_view_if_needed()
    for name in ("original", "view"):  # fixed-size images, so the status line above them stays in sight
        box = s.editor(name).bounding_box()
        assert box["width"] <= 200 and box["height"] <= 200, box
    expect(s.editor("status")).to_be_in_viewport()
    assert page.locator(".jp-Notebook [title='null']").count() == 0  # no tooltip reads "null"
    original, edited = s.image("original"), s.image("view")

    # pick another photo: both images change
    page.locator(".dclip-picker select").select_option("chelsea")
    original = s.wait_image_change("original", original)
    edited = s.wait_image_change("view", edited)

    # fine-tune the default pair: one model, its (disabled) γ slider and a note on why
    s.editor("button").click()
    s.wait_status(r"^weights: original 0 · tanned face \(t0=201\) 1 \(.* trained earlier in this session: reused\)$")
    expect(s.editor("progress").locator(".progress-bar")).to_have_attribute("style", re.compile("width: 100%"))
    edited = s.wait_image_change("view", edited)
    sliders = s.editor("gamma-box").locator(".widget-slider")
    expect(sliders).to_have_count(1)
    expect(s.editor("gamma-note")).to_contain_text("only r matters")
    expect(sliders.nth(0).locator(".noUi-target")).to_have_attribute("disabled", re.compile(".*"))

    # degree of change
    s.set_slider(s.editor("ratio"), 0.3)
    s.wait_status(r"^weights: original 0\.7 · tanned face \(t0=201\) 0\.3$")
    edited = s.wait_image_change("view", edited)

    # a second model: two γ sliders, each named after its model, both active
    s.editor("target").locator("input").fill("angry face")
    s.editor("button").click()
    s.wait_status(r"angry face \(t0=201\) 0\.15$", timeout=90)
    edited = s.wait_image_change("view", edited)
    expect(sliders).to_have_count(2)
    expect(sliders.nth(0).locator("label")).to_have_text("γ tanned face (t0=201)")
    expect(sliders.nth(1).locator("label")).to_have_text("γ angry face (t0=201)")
    expect(sliders.nth(1).locator(".noUi-target")).not_to_have_attribute("disabled", re.compile(".*"))

    # γ of the second model to 0: all of the change comes from the first
    s.set_slider(sliders.nth(1), 0.0)
    s.wait_status(r"tanned face \(t0=201\) 0\.3 · angry face \(t0=201\) 0$")
    edited = s.wait_image_change("view", edited)

    # the return step t0: a new inversion, the same original
    s.set_slider(s.editor("t0"), 260)
    edited = s.wait_image_change("view", edited)
    assert s.image("original") == original and s.status().endswith("angry face (t0=201) 0")

    # a file that is not an image: a red error in sight, the images stay
    s.upload("notes.txt", "text/plain", b"these are notes, not pixels")
    bad = s.wait_status(r"^error: 'notes\.txt' is not an image: .*Save it as a PNG or JPEG file\.$")  # data.images
    expect(s.editor("status")).to_be_in_viewport()
    expect(s.editor("status")).to_have_css("color", "rgb(198, 40, 40)")
    assert (s.image("original"), s.image("view")) == (original, edited)

    # a real image: shown, and the picker no longer names the old photo
    s.upload("red.png", "image/png", png((255, 0, 0)))
    s.wait_status(r"^red\.png: centre-cropped\. weights", stale=bad)
    original = s.wait_image_change("original", original)
    expect(page.locator(".dclip-picker select")).to_have_value("")
    page.locator(".dclip-picker select").select_option("chelsea")  # the earlier choice works again
    s.wait_image_change("original", original)

    page.keyboard.press("Control+s")
    expect(page.locator(".jp-mod-current .jp-mod-dirty")).to_have_count(0, timeout=20_000)


def test_live_editor_in_jupyterlab(lab):
    tracked = digests(REPO / "notebooks")
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        session = Session(page)
        session.url = lab.url
        try:
            drive_the_editor(session)
            assert not session.kernel_errors, "kernel error messages:\n" + "\n".join(session.kernel_errors)
            assert not session.page_errors, f"JavaScript errors: {session.page_errors}"
            assert "Traceback (most recent call last)" not in lab.server_log(), lab.server_log()[-4000:]
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
            (ARTIFACTS / "server.log").write_text(lab.server_log())
            print(f"browser test failed after {time.monotonic() - started:.0f} s; screenshot: {SCREENSHOT}, "
                  f"server log: {ARTIFACTS / 'server.log'}; kernel errors: {session.kernel_errors}")
            raise
        finally:
            browser.close()
    print(f"browser test: {time.monotonic() - started:.0f} s")
    assert digests(REPO / "notebooks") == tracked  # the session never wrote to the tracked notebooks
    # and what it saved is, through the git filter, the tracked notebook: `git status` stays clean
    cleaned = subprocess.run([*NBSTRIPOUT, "-t", str(lab.root / NOTEBOOK)], capture_output=True, check=True).stdout
    assert cleaned == (REPO / "notebooks" / NOTEBOOK).read_bytes()
