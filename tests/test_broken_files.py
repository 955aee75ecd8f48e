"""Broken files and interrupted runs: one clear line, never a traceback, nothing half-written.

Each test writes the broken file itself (cut short, a damaged header, the wrong content) and runs
``python -m dclip`` as a user would, in a subprocess on the tiny models: the exit code, stderr's one line
(``dclip CMD: error: ...`` or ``dclip CMD: interrupted...``, never a traceback) and that nothing was written.
The library-level tests check the same errors from Python (:class:`dclip.UnreadableFileError`), and that
images a user may fairly give (RGBA, grayscale, 16-bit, CMYK, EXIF-rotated, 4000x3000) still read.
"""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dclip
from dclip.data import images
from dclip.method.finetune import FinetuneResult, load_finetuned, read_cached_finetune, recipe, save_finetuned
from dclip.models.folder import read_sidecar, read_tensors, write_model

ROOT = Path(__file__).resolve().parents[1]
#: The one line a CLI failure prints: the usual ``dclip CMD: `` prefix, then the error or the interruption.
ONE_LINE = re.compile(r"^dclip (precompute|finetune|edit): (error: |interrupted)")


# ------------------------------------------------------------------------------------------------
# Writing broken files
# ------------------------------------------------------------------------------------------------

def good_png(path: Path, size=(48, 40), seed: int = 0) -> Path:
    """A real PNG of noise (so that it does not compress to a few bytes)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def truncated(path: Path, source: Path) -> Path:
    """The first half of ``source`` (an interrupted copy or download)."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def damaged_header(path: Path, source: Path) -> Path:
    """``source`` with the PNG IHDR chunk's size fields overwritten (a corrupt header)."""
    data = bytearray(source.read_bytes())
    data[16:24] = b"\xff" * 8
    path.write_bytes(bytes(data))
    return path


def text_named(path: Path) -> Path:
    """A text file with an image's name."""
    path.write_text("these are my notes, not a picture\n")
    return path


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def finetuned(folder: Path, name: str = "tuned", base: str = "tiny") -> Path:
    """A 'fine-tune' of the tiny model (its weights, slightly moved) as the CLI writes one: NAME.safetensors
    and its sidecar."""
    model = dclip.load_unet("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    return save_finetuned(FinetuneResult(model, recipe("paper", "face", "angry face", t0=300)), folder / name,
                          base=base)


BROKEN_IMAGES = {
    "truncated": (lambda d: truncated(d / "in.png", good_png(d / "src.png")), "is truncated"),
    "damaged header": (lambda d: damaged_header(d / "in.png", good_png(d / "src.png")), "is a damaged PNG file"),
    "text named .png": (lambda d: text_named(d / "in.png"), "is not an image"),
    "empty": (lambda d: empty(d / "in.png"), "is empty (0 bytes)"),
}


# ------------------------------------------------------------------------------------------------
# Running the CLI
# ------------------------------------------------------------------------------------------------

def env(tmp_path: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "DCLIP_PROGRESS": "0",
            "DCLIP_CACHE": str(tmp_path / "dclip-cache"), "DCLIP_WEIGHTS": str(tmp_path / "weights")}


def cli(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m dclip ARGS`` on the CPU without progress bars, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "dclip", *args, "--device", "cpu", "--no-progress"],
                          env=env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _ctrl_c_default() -> None:
    """In the child before it starts: SIGINT's default disposition. A job started in the background (``nohup make
    test &``, cron, a CI runner) has SIGINT ignored, every child inherits that, and Ctrl-C would then do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_started(tmp_path: Path, *args: str, python_flags: tuple[str, ...] = ()) -> subprocess.Popen:
    """``python -m dclip ARGS`` started (not waited for), with Ctrl-C's default disposition so that the test can
    interrupt it (see :func:`interrupted`)."""
    return subprocess.Popen([sys.executable, *python_flags, "-m", "dclip", *args, "--device", "cpu", "--no-progress"],
                            env=env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_default)


def interrupted(run: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    """Ctrl-C to ``run``; its stdout and stderr once it has ended. A run that outlives ``timeout`` is killed (it
    would otherwise go on training in the background) and the test fails."""
    run.send_signal(signal.SIGINT)
    try:
        return run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
        pytest.fail(f"Ctrl-C did not stop the run within {timeout:.0f} s")


def the_line(stderr: str, warnings: int = 0) -> str:
    """stderr's one line (after ``warnings`` warning lines): no traceback, nothing else."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == warnings + 1, stderr
    assert all(": warning: skipped '" in line for line in lines[:warnings]), stderr
    assert ONE_LINE.match(lines[-1]), stderr
    return lines[-1]


def no_files(folder: Path, *names: str) -> None:
    """None of ``names`` in ``folder``, and no temporary file of an interrupted write either."""
    for name in names:
        assert not (folder / name).exists(), name
    assert not list(folder.rglob("*.tmp")), list(folder.rglob("*.tmp"))


def wait_for(predicate, process: subprocess.Popen, timeout: float = 240) -> None:
    """Poll until ``predicate()`` holds (the run got that far), failing if the process ends first."""
    start = time.monotonic()
    while not predicate():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() - start < timeout, "the run did not get there in time"
        time.sleep(0.05)


EDIT = ("edit", "--model", "tiny", "--t0", "300", "--n-inv", "4", "--n-gen", "4")


def finetune_args(n_iter: int = 1) -> tuple[str, ...]:
    return ("finetune", "--model", "tiny", "--clip", "tiny", "--attribute", "pixar", "--n-iter", str(n_iter),
            "--n-inv", "4", "--n-gen", "2", "--t0", "300")


# ------------------------------------------------------------------------------------------------
# The command line: broken images
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(BROKEN_IMAGES))
def test_edit_of_a_broken_image_is_one_error_line(tmp_path, kind):
    write, problem = BROKEN_IMAGES[kind]
    image = write(tmp_path)
    tuned = finetuned(tmp_path)
    result = cli(tmp_path, *EDIT, "--finetuned", str(tuned), "--image", str(image), "--out", str(tmp_path / "o.png"))
    line = the_line(result.stderr)
    assert result.returncode == 2 and "error:" in line and f"'{image}' {problem}" in line, line
    no_files(tmp_path, "o.png")


def test_edit_of_a_folder_skips_unreadable_images_with_one_warning_each(tmp_path):
    """Broken image files are skipped with a warning line each; non-image files silently (by suffix)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    good_png(folder / "a.png")
    truncated(folder / "b.png", good_png(tmp_path / "src.png", seed=1))
    text_named(folder / "c.jpg")
    (folder / "notes.txt").write_text("not an image, and not named like one\n")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # hidden: skipped silently
    result = cli(tmp_path, *EDIT, "--finetuned", str(finetuned(tmp_path)), "--images", str(folder),
                 "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and len(lines) == 2, result.stderr
    assert f"'{folder / 'b.png'}': it is truncated" in lines[0]
    assert f"'{folder / 'c.jpg'}': it is not an image" in lines[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    assert "edited 1 of 3 images" in result.stdout and "2 unreadable, skipped" in result.stdout


@pytest.mark.parametrize("command", ["finetune", "precompute"])
def test_a_folder_of_only_broken_images_is_one_error_after_the_warnings(tmp_path, command):
    folder = tmp_path / "photos"
    folder.mkdir()
    truncated(folder / "a.png", good_png(tmp_path / "src.png"))
    text_named(folder / "b.png")
    cache = tmp_path / "latents"
    if command == "finetune":
        args = (*finetune_args(), "--cache", str(cache), "--out", str(tmp_path / "tuned"))
    else:
        args = ("precompute", "--model", "tiny", "--t0", "300", "--n-inv", "4", "--cache", str(cache),
                "--out", str(tmp_path / "grid.png"))
    result = cli(tmp_path, *args, "--images", str(folder))
    line = the_line(result.stderr, warnings=2)
    assert result.returncode == 2 and f"'{folder}' holds no image that can be read" in line, line
    no_files(tmp_path, "tuned.safetensors", "tuned.json", "grid.png", "latents")


# ------------------------------------------------------------------------------------------------
# The command line: broken fine-tuned models and sidecars
# ------------------------------------------------------------------------------------------------

def _half_weights(tuned: Path) -> Path:
    return truncated(tuned, tuned)


def _text_weights(tuned: Path) -> Path:
    tuned.write_text("not weights\n")
    return tuned


def _torch_weights(tuned: Path) -> Path:
    torch.save({"conv_in.weight": torch.zeros(1)}, tuned)
    return tuned


def _half_sidecar(tuned: Path) -> Path:
    truncated(tuned.with_suffix(".json"), tuned.with_suffix(".json"))
    return tuned.with_suffix(".json")


def _other_base(tuned: Path) -> Path:
    sidecar = tuned.with_suffix(".json")
    sidecar.write_text(sidecar.read_text().replace('"base": "tiny"', '"base": "lsun_church"'))
    return tuned


BROKEN_MODELS = {
    "safetensors cut in half": (_half_weights, "is truncated: it holds"),
    "text named .safetensors": (_text_weights, "is not a safetensors file"),
    "torch file named .safetensors": (_torch_weights, "is not a safetensors file (it looks like a PyTorch"),
    "sidecar cut in half": (_half_sidecar, "is truncated"),
    "fine-tune of another base model": (_other_base, "is a fine-tune of the 'lsun_church' model"),
}


@pytest.mark.parametrize("kind", list(BROKEN_MODELS))
def test_edit_with_a_broken_fine_tune_is_one_error_line(tmp_path, kind):
    breaks, problem = BROKEN_MODELS[kind]
    tuned = finetuned(tmp_path)
    culprit = breaks(tuned)
    image = good_png(tmp_path / "in.png")
    result = cli(tmp_path, *EDIT, "--finetuned", str(tuned), "--image", str(image), "--out", str(tmp_path / "o.png"))
    line = the_line(result.stderr)
    assert result.returncode == 2 and f"'{culprit}' {problem}" in line, line
    no_files(tmp_path, "o.png")


def _half_torch_file(folder: Path, name: str) -> Path:
    """A ``torch.save`` file of a few tensors, cut in half (an interrupted download)."""
    whole = folder / f"whole_{name}"
    torch.save({"w": torch.randn(64, 64), "b": torch.randn(64)}, whole)
    return truncated(folder / name, whole)


def _half_safetensors(folder: Path, name: str) -> Path:
    from safetensors.torch import save_file

    whole = folder / f"whole_{name}"
    save_file({"w": torch.randn(64, 64)}, str(whole))
    return truncated(folder / name, whole)


#: Each weight flag with a file cut in half: the command, the broken file's maker, what the line says.
BROKEN_WEIGHT_FLAGS = {
    "--clip-weights .safetensors": (("--clip", "ViT-B-16-quickgelu", "--clip-weights"), _half_safetensors,
                                    "clip.safetensors", "is truncated: it holds"),
    "--clip-weights .pt": (("--clip", "ViT-B-16-quickgelu", "--clip-weights"), _half_torch_file, "clip.pt",
                           "is truncated: a PyTorch archive without its end"),
    "--face-weights": (("--lambda-id", "0.5", "--face-weights"), _half_torch_file, "20180402-114759-vggface2.pt",
                       "is truncated: a PyTorch archive without its end"),
    "--arcface-weights": (("--lambda-id", "0.5", "--arcface-weights"), _half_torch_file, "model_ir_se50.pth",
                          "is truncated: a PyTorch archive without its end"),
}


@pytest.mark.parametrize("flag", list(BROKEN_WEIGHT_FLAGS))
def test_a_truncated_weight_file_given_by_flag_is_one_error_line(tmp_path, flag):
    args, broken, name, problem = BROKEN_WEIGHT_FLAGS[flag]
    culprit = broken(tmp_path, name)
    finetune = list(finetune_args())
    if "--clip" in args:  # the flag names its own CLIP
        at = finetune.index("--clip")
        del finetune[at:at + 2]
    result = cli(tmp_path, *finetune, *args, str(culprit), "--n-images", "1", "--out", str(tmp_path / "tuned"))
    line = the_line(result.stderr)
    assert result.returncode == 2 and f"'{culprit}' {problem}" in line, line
    no_files(tmp_path, "tuned.safetensors")


@pytest.mark.parametrize("suffix", [".pth", ".ckpt"])
def test_a_truncated_unet_checkpoint_is_one_error_line(tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    torch.save(dclip.load_unet("tiny").state_dict(), whole)
    culprit = truncated(tmp_path / f"unet{suffix}", whole)
    result = cli(tmp_path, "edit", "--model", str(culprit), "--model-config", "tiny", "--t0", "300", "--n-inv", "4",
                 "--n-gen", "4", "--finetuned", str(finetuned(tmp_path)), "--image", str(good_png(tmp_path / "in.png")),
                 "--out", str(tmp_path / "o.png"))
    line = the_line(result.stderr)
    assert result.returncode == 2, line
    assert f"'{culprit}' is truncated: a PyTorch archive without its end" in line, line
    no_files(tmp_path, "o.png")


# ------------------------------------------------------------------------------------------------
# The command line: Ctrl-C
# ------------------------------------------------------------------------------------------------

def test_ctrl_c_during_finetune_exits_130_and_writes_nothing(tmp_path):
    cache = tmp_path / "latents"
    run = cli_started(tmp_path, *finetune_args(n_iter=100_000), "--n-images", "1", "--cache", str(cache),
                      "--out", str(tmp_path / "tuned"))
    wait_for(lambda: any(cache.glob("*.pt")), run)  # the latent is cached: training has begun
    time.sleep(0.5)
    out, err = interrupted(run)
    assert run.returncode == 130, err
    assert the_line(err) == f"dclip finetune: interrupted; nothing written to {tmp_path / 'tuned.safetensors'}"
    no_files(tmp_path, "tuned.safetensors", "tuned.json")


def test_ctrl_c_while_python_is_still_importing_is_one_line(tmp_path):
    """Ctrl-C in the seconds torch takes to import: the same one line, no traceback from inside an import."""
    run = cli_started(tmp_path, *finetune_args(n_iter=1), "--out", str(tmp_path / "tuned"),
                      python_flags=("-X", "importtime"))
    for line in run.stderr:  # -X importtime: a line each time a module's import ends
        if re.search(r"\|\s+torch\.", line):  # one of torch's modules is done: torch itself is mid-import
            break
    out, rest = interrupted(run)
    err = "".join(line for line in rest.splitlines(keepends=True) if not line.startswith("import time:"))
    assert run.returncode == 130, err
    assert the_line(err) == f"dclip finetune: interrupted; nothing written to {tmp_path / 'tuned.safetensors'}"
    no_files(tmp_path, "tuned.safetensors")


def _ctrl_c_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_run_started_with_ctrl_c_ignored_keeps_ignoring_it(tmp_path):
    """A background job (nohup, cron) is started with SIGINT ignored and expects to keep running through one."""
    cache = tmp_path / "latents"
    run = subprocess.Popen([sys.executable, "-m", "dclip", *finetune_args(n_iter=100_000), "--n-images", "1",
                            "--cache", str(cache), "--out", str(tmp_path / "tuned"), "--device", "cpu",
                            "--no-progress"], env=env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_ignored)
    try:
        wait_for(lambda: any(cache.glob("*.pt")), run)
        run.send_signal(signal.SIGINT)
        time.sleep(2.0)
        assert run.poll() is None, run.communicate()
    finally:
        run.kill()
        run.communicate()


def good_folder(folder, n: int = 3):
    """A folder of ``n`` readable PNGs, 0.png ... (n-1).png."""
    folder.mkdir()
    for i in range(n):
        good_png(folder / f"{i}.png", seed=i)
    return folder


def test_ctrl_c_during_an_edit_of_a_folder_says_how_far_it_got(tmp_path):
    folder, out = good_folder(tmp_path / "photos"), tmp_path / "out"
    run = cli_started(tmp_path, "edit", "--model", "tiny", "--t0", "300", "--n-inv", "100", "--n-gen", "100",
                      "--batch-size", "1", "--finetuned", str(finetuned(tmp_path)), "--images", str(folder),
                      "--out", str(out))
    wait_for(lambda: (out / "0.png").is_file(), run)
    _, err = interrupted(run)
    assert run.returncode == 130, err
    done = sorted(p.name for p in out.iterdir())
    assert the_line(err) == f"dclip edit: interrupted after {len(done)} of 3 images; re-run to finish"
    assert done in (["0.png"], ["0.png", "1.png"])
    assert all(Image.open(out / name).size == (32, 32) for name in done)  # each complete
    no_files(out)


def test_ctrl_c_during_precompute_leaves_only_complete_latents(tmp_path):
    folder, cache = good_folder(tmp_path / "photos"), tmp_path / "latents"
    run = cli_started(tmp_path, "precompute", "--model", "tiny", "--t0", "300", "--n-inv", "150", "--batch-size", "1",
                      "--images", str(folder), "--cache", str(cache))
    wait_for(lambda: any(cache.glob("*.pt")), run)
    _, err = interrupted(run)
    assert run.returncode == 130, err
    cached = list(cache.glob("*.pt"))
    assert the_line(err) == f"dclip precompute: interrupted after {len(cached)} of 3 images; re-run to finish"
    assert all(torch.load(p, weights_only=True)["x_lat"].shape == (1, 3, 32, 32) for p in cached)
    no_files(cache)


# ------------------------------------------------------------------------------------------------
# The library: the same errors from Python
# ------------------------------------------------------------------------------------------------

def test_load_image_of_a_truncated_file_raises_the_dclip_error_naming_it(tmp_path):
    path = truncated(tmp_path / "face.png", good_png(tmp_path / "src.png"))
    with pytest.raises(dclip.UnreadableFileError, match="is truncated") as err:
        dclip.load_image(path, 32)
    assert str(path) in str(err.value) and "\n" not in str(err.value) and err.value.path == str(path)
    assert isinstance(err.value, ValueError)


def test_an_uploaded_broken_file_raises_the_same_error_naming_the_upload(tmp_path):
    from dclip.editor.widgets import Editor

    data = truncated(tmp_path / "up.png", good_png(tmp_path / "src.png")).read_bytes()
    with pytest.raises(dclip.UnreadableFileError, match=r"^'holiday.png' is truncated"):
        Editor(ctx=None).load_bytes(data, name="holiday.png")
    with pytest.raises(dclip.UnreadableFileError, match=r"^'notes.png' is not an image.*PNG or JPEG"):
        images.read_image(b"just text", name="notes.png")


def test_load_folder_skips_broken_images_and_fails_only_when_none_is_left(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    good_png(folder / "a.png")
    truncated(folder / "b.png", good_png(tmp_path / "src.png"))
    text_named(folder / "c.png")
    (folder / "notes.txt").write_text("not an image by its suffix: skipped silently")
    assert images.load_folder(folder, size=32).shape == (1, 3, 32, 32)
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: skipped '") for w in warnings)
    (folder / "a.png").unlink()
    with pytest.raises(dclip.UnreadableFileError, match="holds no image that can be read: all 2 image files"):
        images.load_folder(folder, size=32)


def test_model_file_readers_name_the_broken_file(tmp_path):
    tuned = finetuned(tmp_path)
    truncated(tmp_path / "half.safetensors", tuned)
    with pytest.raises(dclip.UnreadableFileError, match=r"'.*half.safetensors' is truncated: it holds"):
        read_tensors(tmp_path / "half.safetensors")
    truncated(tmp_path / "half.json", tuned.with_suffix(".json"))
    with pytest.raises(dclip.UnreadableFileError, match=r"'.*half.json' is truncated"):
        read_sidecar(tmp_path / "half.safetensors")
    with pytest.raises(dclip.UnreadableFileError, match="a fine-tune of the 'tiny' model .* not of 'lsun_church'"):
        load_finetuned(tuned, base_name="lsun_church")
    with pytest.raises(dclip.UnreadableFileError, match=r"different architecture .*\('tiny', its sidecar says\)"):
        load_finetuned(tuned, base=dclip.load_unet("toy"))


def test_a_damaged_fine_tune_in_the_disk_cache_is_trained_again(tmp_path, capsys):
    entry = finetuned(tmp_path / "finetuned", name="0123abcd")
    truncated(entry, entry)
    assert read_cached_finetune(entry, dclip.load_unet("tiny"), recipe("paper", "face", "angry face")) is None
    assert "warning: ignored the disk cache's fine-tune" in capsys.readouterr().err


def test_a_model_file_and_its_sidecar_are_written_as_one(tmp_path, monkeypatch):
    """Ctrl-C while the sidecar is written leaves neither file (not the weights without their sidecar)."""
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_model(dclip.load_unet("tiny"), tmp_path / "m", {"base": "tiny"})
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_renaming_waits_until_the_renames_are_done():
    from dclip.runtime.atomic import interrupts_held

    reached = False
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, even in a background job
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_held():
                signal.raise_signal(signal.SIGINT)
                reached = True  # the block runs to its end; the interruption comes after it
    finally:
        signal.signal(signal.SIGINT, before)
    assert reached


# ------------------------------------------------------------------------------------------------
# Images a user may fairly give
# ------------------------------------------------------------------------------------------------

def test_transparent_pixels_read_as_white(tmp_path):
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 4, 8))  # left half opaque blue, right half transparent
    image.save(tmp_path / "rgba.png")
    x = dclip.load_image(tmp_path / "rgba.png", None)[0]
    assert torch.allclose(x[:, :, 4:], torch.ones(3, 8, 4)) and torch.allclose(x[:, :, :4].mean((1, 2)),
                                                                               torch.tensor([-1.0, -1.0, 1.0]))


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16)).save(tmp_path / "g16.png")
    x = dclip.load_image(tmp_path / "g16.png", None)
    assert x.shape == (1, 3, 16, 16) and abs(x.mean().item()) < 0.01  # mid-grey, not white


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (60, 40), (255, 0, 0))
    image.paste((0, 0, 255), (30, 0, 60, 40))  # red left, blue right as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the camera was held on its side
    image.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    x = dclip.load_image(tmp_path / "photo.jpg", None)[0]
    assert x.shape == (3, 60, 40)  # upright: taller than wide
    assert x[0, :25].mean() > 0.8 and x[2, 35:].mean() > 0.8  # red on top, blue at the bottom


@pytest.mark.parametrize("mode, color, expected", [("L", 200, (200, 200, 200)), ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
                                                    ("P", None, (255, 255, 0))])
def test_grayscale_cmyk_and_palette_images_read_as_rgb(tmp_path, mode, color, expected):
    image = Image.new(mode, (16, 16), color) if mode != "P" else Image.new("RGB", (16, 16), (255, 255, 0)).convert("P")
    path = tmp_path / ("in.jpg" if mode == "CMYK" else "in.png")
    image.save(path)
    x = dclip.load_image(path, None)[0]
    assert torch.allclose((x.mean((1, 2)) + 1) * 127.5, torch.tensor(expected, dtype=torch.float32), atol=3)


def test_a_large_photo_is_resized_before_the_model_sees_it(tmp_path):
    image = Image.new("RGB", (4000, 3000), (0, 128, 0))
    image.paste((255, 255, 255), (1900, 1400, 2100, 1600))
    image.save(tmp_path / "big.jpg", quality=90)
    x = dclip.load_image(tmp_path / "big.jpg", 32)
    assert x.shape == (1, 3, 32, 32) and x[0, :, 16, 16].min() > 0.5  # the white centre survives the resize


def test_bytes_and_paths_read_alike(tmp_path):
    path = good_png(tmp_path / "a.png")
    buffer = io.BytesIO(path.read_bytes())
    from_bytes = images.read_image(buffer.getvalue(), name="a.png")
    assert np.array_equal(np.asarray(from_bytes), np.asarray(images.read_image(path)))
