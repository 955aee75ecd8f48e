"""Notebook 06 in JupyterLab, driven in headless Chromium as a researcher would use it.

Needs a Chromium on the machine (Debian: ``apt-get install -y chromium``; another binary via
``$DCLIP_CHROMIUM``) and the ``dclip`` Jupyter kernel (``make setup``); Playwright drives it, nothing is
downloaded. Without a Chromium the test is skipped with a message, unless ``DCLIP_REQUIRE_BROWSER=1``
(CI) makes that a failure. JupyterLab runs on a free localhost port with a random token, on a temporary
copy of the notebook with its own home, runtime and settings folders, and is stopped by its process id.
On failure a screenshot and the server log go to ``.cache/browser-test/``; on success a screenshot of the editor
goes to ``$DCLIP_BROWSER_SCREENSHOT`` (default ``.cache/browser-test/editor.png``).

Every wait ends when the kernel or the editor's widgets show that the action is done (the kernel idle after Run All,
the status line, an image, a button's state); the deadline, ``$DCLIP_BROWSER_DEADLINE_S`` seconds (default 600) per
wait, is only reached when something is broken, so the test passes on a machine whose cores are busy.
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
EDITOR_SHOT = Path(os.environ.get("DCLIP_BROWSER_SCREENSHOT", "") or ARTIFACTS / "editor.png")
#: How long one wait may take before the test fails: far longer than any step takes on a busy machine.
DEADLINE_S = float(os.environ.get("DCLIP_BROWSER_DEADLINE_S", "600"))
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

    def _wait_ready(self, timeout: float = DEADLINE_S) -> None:
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

    def kernel_state(self) -> str:
        """The kernel's state as JupyterLab's status bar shows it ("Idle", "Busy", ...)."""
        text = self.page.locator("#jp-main-statusbar").inner_text()
        return next((w for w in ("Idle", "Busy", "Starting", "Restarting", "Connecting", "Unknown", "Dead")
                     if w in text), text.strip())

    def wait_until(self, check, what: str, timeout: float = DEADLINE_S):
        """Poll ``check()`` until it gives something true and return that; a kernel error fails at once, the
        deadline (only reached when something is broken) fails naming ``what``, the status line and the kernel."""
        deadline = time.monotonic() + timeout
        while True:
            if self.kernel_errors:  # a cell or a widget callback raised
                raise AssertionError(f"kernel error messages: {self.kernel_errors}")
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                status = self.status() if self.editor("status").count() else "(no editor yet)"
                raise AssertionError(f"waited {timeout:.0f} s for {what}; the status line reads {status!r}, "
                                     f"the kernel is {self.kernel_state()}")
            time.sleep(0.25)

    def wait_idle(self, what: str) -> None:
        """Wait for the kernel to be idle: everything sent to it (cells, widget messages) has run."""
        self.wait_until(lambda: self.kernel_state() == "Idle", f"the kernel to go idle after {what}")

    def wait_status(self, pattern: str, stale: str | None = None) -> str:
        """Wait for the status line to match ``pattern``; an error it does not expect (other than the
        ``stale`` one shown before the action) fails at once."""
        def matched():
            status = self.status() if self.editor("status").count() else "(no editor yet)"
            if status.startswith("error") and not pattern.startswith("^error") and status != stale:
                raise AssertionError(f"the status line shows an error: {status!r}")
            return status if re.search(pattern, status) else None
        return self.wait_until(matched, f"the status line to match {pattern!r}")

    def wait_image_change(self, name: str, before: str) -> str:
        return self.wait_until(lambda: (lambda now: now if now != before else None)(self.image(name)),
                               f"the {name} image to change")

    def wait_render(self, before: str) -> str:
        """Wait for the edited view to show a new full render: it changed and the status line no longer says a
        preview is on screen (the editor says "preview ..." before it shows one, and its weights after the full
        render)."""
        def rendered():
            now = self.image("view")
            return now if now != before and not self.status().startswith("preview") else None
        return self.wait_until(rendered, "the full render of the edit")

    def wait_image(self, name: str, expected: str, what: str) -> None:
        self.wait_until(lambda: self.image(name) == expected, f"the {name} image to show {what}")

    def wait_finetune_done(self) -> None:
        """The fine-tune thread has ended: fine-tune is enabled again and Stop disabled (widget state)."""
        self.wait_until(lambda: self.editor("button").is_enabled() and self.editor("stop").is_disabled(),
                        "the fine-tune to end (fine-tune enabled, stop disabled)")

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
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle")  # the kernel started
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()

    # Run All: the editor opens on the sample photo with no fine-tuned model (none the user did not ask for)
    assert s.wait_status("^weights") == "weights: original 1"
    s.wait_idle("Run All")
    expect(s.editor("gamma-box").locator(".widget-slider")).to_have_count(0)
    s.editor("picker").scroll_into_view_if_needed()
    for name in ("original", "view"):  # fixed-size images, so the status line above them stays in sight
        box = s.editor(name).bounding_box()
        assert box["width"] <= 200 and box["height"] <= 200, box
    expect(s.editor("status")).to_be_in_viewport()
    untitled = page.locator(".jp-Notebook [title='null']").evaluate_all("els => els.map(e => e.outerHTML.slice(0, 160))")
    assert not untitled, untitled  # no tooltip reads "null"
    original, edited = s.image("original"), s.image("view")

    # the toy world's own test faces in the picker; pick another: both images change
    options = [o.replace("\xa0", " ") for o in page.locator(".dclip-picker select option").all_inner_texts()]
    assert options == [f"toy face {i}" for i in range(8)], options  # (ipywidgets shows spaces as no-break ones)
    page.locator(".dclip-picker select").select_option(index=2)
    original = s.wait_image_change("original", original)
    edited = s.wait_render(edited)

    # fine-tune the default pair: one model, its (disabled) γ slider and a note on why
    s.editor("button").click()
    s.wait_status(r"^weights: original 0 · tanned face \(t0=201\) 1 \(.* trained earlier in this session: reused\)$")
    s.wait_finetune_done()
    expect(s.editor("progress").locator(".progress-bar")).to_have_attribute("style", re.compile("width: 100%"))
    edited = s.wait_render(edited)
    sliders = s.editor("gamma-box").locator(".widget-slider")
    expect(sliders).to_have_count(1)
    expect(s.editor("gamma-note")).to_contain_text("only r matters")
    expect(sliders.nth(0).locator(".noUi-target")).to_have_attribute("disabled", re.compile(".*"))

    # degree of change
    s.set_slider(s.editor("ratio"), 0.3)
    s.wait_status(r"^weights: original 0\.7 · tanned face \(t0=201\) 0\.3$")
    edited = s.wait_render(edited)

    # a second model: two γ sliders, each named after its model, both active
    s.editor("target").locator("input").fill("angry face")
    s.editor("button").click()
    s.wait_status(r"angry face \(t0=201\) 0\.15$")
    s.wait_finetune_done()
    edited = s.wait_render(edited)
    expect(sliders).to_have_count(2)
    expect(sliders.nth(0).locator("label")).to_have_text("γ tanned face (t0=201)")
    expect(sliders.nth(1).locator("label")).to_have_text("γ angry face (t0=201)")
    expect(sliders.nth(1).locator(".noUi-target")).not_to_have_attribute("disabled", re.compile(".*"))

    # γ of the second model to 0: all of the change comes from the first
    s.set_slider(sliders.nth(1), 0.0)
    s.wait_status(r"tanned face \(t0=201\) 0\.3 · angry face \(t0=201\) 0$")
    edited = s.wait_render(edited)

    # the return step t0: a new inversion, the same original
    s.set_slider(s.editor("t0"), 260)
    edited = s.wait_render(edited)
    assert s.image("original") == original and s.status().endswith("angry face (t0=201) 0")
    at_t0 = edited

    # a fine-tune stopped midway: the loss beside the bar, Stop ends it there and keeps the model
    s.editor("target").locator("input").fill("sad face")
    s.editor("button").click()
    s.wait_until(lambda: re.match(r"update \d+/\d+ · loss \d", s.editor("loss").inner_text()), "the loss beside the bar")
    expect(s.editor("button")).to_be_disabled()
    s.editor("stop").click()
    stopped = s.wait_status(r"^stopped: 'sad face \(t0=260\) \(stopped at update \d+/\d+\)' keeps its \d+ updates")
    s.wait_finetune_done()
    done, total = map(int, re.search(r"stopped at update (\d+)/(\d+)", stopped).groups())
    assert 1 <= done < total, stopped
    expect(sliders).to_have_count(3)
    edited = s.wait_render(edited)

    # before | after: the split shows the original on the left; back at 0 the edit alone
    s.set_slider(s.editor("compare"), 0.5)
    s.wait_render(edited)
    s.set_slider(s.editor("compare"), 0)
    s.wait_image("view", edited, "the edit alone again")

    # history: one thumbnail per edit; undo goes back to the edit before the stopped model, redo forward
    items = s.editor("history-box").locator(".dclip-history-item")
    assert items.count() >= 6, items.count()
    s.editor("undo").click()
    s.wait_status(r"^edit #\d+ restored \(.*· t0 260 ·")
    s.wait_image("view", at_t0, "the edit before the stopped model")
    expect(sliders).to_have_count(2)
    s.editor("redo").click()
    s.wait_image("view", edited, "the edit with the stopped model again")
    expect(sliders).to_have_count(3)
    items.nth(0).locator("button").click()  # the first edit: the reconstruction of the sample, no model
    s.wait_status(r"^edit #1 restored \(reconstruction")
    expect(sliders).to_have_count(0)
    s.editor("undo").click()
    s.wait_image("view", edited, "the edit shown before the thumbnail's")

    # the drawing pad: a stroke, then generate: projected into the toy world and edited
    canvas = s.editor("pad-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 150, steps=10)
    page.mouse.up()
    s.editor("pad-generate").click()
    s.wait_status(r"^drawing projected into the model's domain \(K = \d+ rounds")
    original = s.wait_image_change("original", original)
    edited = s.wait_render(edited)

    # save: the PNG's settings redo the edit from the command line
    s.editor("save").click()
    saved = Path(re.match(r"^saved (\S+\.png) ", s.wait_status(r"^saved \S+\.png ")).group(1))
    check_saved_edit(saved, done)
    shoot_editor(page)

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
    page.locator(".dclip-picker select").select_option(index=2)  # the earlier choice works again
    s.wait_image_change("original", original)

    s.wait_idle("the last action")
    page.keyboard.press("Control+s")
    expect(page.locator(".jp-mod-current .jp-mod-dirty")).to_have_count(0)


def check_saved_edit(png: Path, done: int) -> None:
    """The saved edit's settings are the editor's, and ``python -m dclip edit --from-png`` redoes it."""
    import numpy as np
    from PIL import Image

    from dclip.editor.saved_edit import read_settings

    settings = read_settings(png)
    assert settings["prompts"] == [["face", "tanned face"], ["face", "angry face"], ["face", "sad face"]], settings
    assert (settings["t0"], settings["r"], settings["gammas"]) == (260, 0.3, [1.0, 0.0, 1.0]), settings
    assert settings["base_model"] == "toy" and settings["K"] >= 1 and settings["strokes"], settings
    assert [m["stopped"] for m in settings["models"]] == [False, False, True]
    assert settings["models"][2]["updates"] == done
    out = png.with_name("redone.png")
    run = subprocess.run([sys.executable, "-m", "dclip", "edit", "--from-png", str(png), "--out", str(out),
                          "--device", "cpu", "--no-progress"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}, timeout=DEADLINE_S)
    assert run.returncode == 0, run.stderr
    pixels = [np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in (png, out)]
    assert np.abs(pixels[0] - pixels[1]).max() <= 1  # ≤ 1/255


def shoot_editor(page) -> None:
    """A screenshot of the whole editor (``EDITOR_SHOT``), in a window tall enough to hold it."""
    EDITOR_SHOT.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 1700})
    try:
        page.locator(".dclip-picker").evaluate("el => el.scrollIntoView({block: 'start'})")
        time.sleep(1)  # the notebook draws the cells that came into view
        page.screenshot(path=str(EDITOR_SHOT))
    finally:
        page.set_viewport_size(size)


def test_live_editor_in_jupyterlab(lab):
    tracked = digests(REPO / "notebooks")
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(DEADLINE_S * 1000)
        expect.set_options(timeout=DEADLINE_S * 1000)
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
