"""A saved edit: the live editor's "Save" writes the edited image as a PNG that holds everything to redo it.

``edit-001.png`` is the edited image (the model's size); its PNG text chunks and the sidecar ``edit-001.json``
hold the settings (:data:`TEXT_KEY`, one JSON object; each setting also as its own chunk, for image viewers):
the input image's file (``edit-001-input.png`` beside it; a drawing's strokes too, ``edit-001-strokes.png``),
the prompt pair(s), t0, r, γ, S_inv, S_gen, the projection rounds K of a drawing, the seed, dclip's version,
the base model's name and each fine-tuned model's file (relative to the PNG) with its sha256. A fine-tuned model
that was only in memory is written beside the PNG (:func:`dclip.method.finetune.save_finetuned`). Every file is
written atomically (:mod:`dclip.runtime.atomic`).

``python -m dclip edit --from-png edit-001.png --out again.png`` redoes the edit (:mod:`dclip.cli.from_png`):
:func:`read_settings` and :func:`needed_files` here say what it needs; a missing file is named in the error.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FORMAT", "TEXT_KEY", "SavedEdit", "save_edit", "read_settings", "needed_files", "sha256_of"]

FORMAT = "dclip-edit/1"
#: The PNG text chunk holding the settings as one JSON object.
TEXT_KEY = "dclip-edit"
#: The settings that also get a text chunk of their own (JSON values), readable in any image viewer.
_OWN_CHUNKS = ("prompts", "t0", "r", "gammas", "S_inv", "S_gen", "K", "seed", "dclip_version", "base_model")


@dataclass
class SavedEdit:
    """The files one Save wrote (``models``: each fine-tuned model's weights, old or new)."""

    png: Path
    sidecar: Path
    input: Path
    models: list[Path]
    strokes: Path | None = None


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def _free_stem(folder: Path) -> str:
    """``edit-NNN``: the first number with no PNG or sidecar in ``folder``."""
    n = 1
    while (folder / f"edit-{n:03d}.png").exists() or (folder / f"edit-{n:03d}.json").exists():
        n += 1
    return f"edit-{n:03d}"


def _model_file(tuned, folder: Path, known: dict, base_model: str) -> Path:
    """The weights file of a fine-tuned model: the one saved before (``known``: id(model) -> path) while it is
    still there, else written now beside the edit as ``model-<label>.safetensors`` (and ``.json``)."""
    from ..method.finetune import save_finetuned

    path = known.get(id(tuned.model))
    if path is not None and Path(path).is_file() and Path(path).with_suffix(".json").is_file():
        return Path(path)
    if getattr(tuned, "result", None) is None:
        raise ValueError(f"the fine-tuned model '{tuned.label}' has no training record to save with it; "
                         "fine-tune it again in the editor, then save.")
    stem, n = f"model-{_slug(tuned.label)}", 1
    while (folder / f"{stem}.safetensors").exists():
        n += 1
        stem = f"model-{_slug(tuned.label)}-{n}"
    path = save_finetuned(tuned.result, folder / stem, base=base_model)
    known[id(tuned.model)] = path
    return path


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()


def save_edit(snapshot, folder: str | os.PathLike, *, base_model: str, profile: str, n_inv: int, n_gen: int,
              seed: int, model_files: dict | None = None, mode: str = "fp32") -> SavedEdit:
    """Write the edit ``snapshot`` (a :class:`dclip.editor.history.Snapshot`) into ``folder`` as the next free
    ``edit-NNN.png`` with its settings, its input image and any fine-tuned model not on disk yet.

    ``model_files`` (id(model) -> weights path) remembers where models were written, so that the next save
    points at the same files; it is updated. ``mode``: the fast-path mode the generation ran in
    (:data:`dclip.runtime.fast.MODES`: ``fp32``, ``cpu-bf16``, ``cuda``), so that redoing it runs in the same one."""
    from PIL.PngImagePlugin import PngInfo

    from ..data.images import save_image, to_pil
    from ..runtime.atomic import atomic_write_all
    from ..version import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    known = {} if model_files is None else model_files
    stem = _free_stem(folder)
    models = [_model_file(t, folder, known, base_model) for t in snapshot.tuned]
    input_path = save_image(snapshot.image.cpu(), folder / f"{stem}-input.png")
    origin = snapshot.origin or {}
    strokes = save_image(origin["strokes"].cpu(), folder / f"{stem}-strokes.png") if "strokes" in origin else None
    settings = {
        "format": FORMAT, "image": f"{stem}.png", "input": input_path.name, "input_name": snapshot.image_name,
        "strokes": strokes.name if strokes else None,
        "prompts": [[t.result.config.source, t.result.config.target] if t.result else [None, t.label]
                    for t in snapshot.tuned],
        "t0": int(snapshot.t0), "r": float(snapshot.ratio), "gammas": [float(t.gamma) for t in snapshot.tuned],
        "S_inv": int(n_inv), "S_gen": int(n_gen), "K": origin.get("K"),
        "projection": {k: origin[k] for k in ("K", "t0", "steps") if k in origin} or None,
        "seed": int(seed), "dclip_version": __version__, "base_model": base_model, "profile": profile, "mode": mode,
        "models": [{"label": t.label, "path": _relative(p, folder), "sha256": sha256_of(p),
                    "stopped": bool(getattr(t.result, "stopped", False)),
                    "updates": len(t.result.history) if t.result else None}
                   for t, p in zip(snapshot.tuned, models)],
    }
    text = json.dumps(settings, indent=1)
    info = PngInfo()
    info.add_text(TEXT_KEY, json.dumps(settings))
    for key in _OWN_CHUNKS:
        info.add_text(key, json.dumps(settings[key]))
    info.add_text("Software", f"dclip {__version__}")
    info.add_text("Description", f"DiffusionCLIP edit: {snapshot.settings()}")
    png, sidecar = folder / f"{stem}.png", folder / f"{stem}.json"
    atomic_write_all([(png, lambda tmp: to_pil(snapshot.output.cpu())[0].save(tmp, format="PNG", pnginfo=info)),
                      (sidecar, lambda tmp: tmp.write_text(text))])
    return SavedEdit(png, sidecar, input_path, models, strokes)


def read_settings(png: str | os.PathLike) -> dict:
    """The settings a saved edit's PNG holds (its :data:`TEXT_KEY` chunk, else its sidecar ``NAME.json``).

    Raises FileNotFoundError without the PNG, and :class:`~dclip.runtime.errors.UnreadableFileError` when it is no
    PNG or holds no dclip edit settings."""
    from PIL import Image

    from ..runtime.errors import UnreadableFileError

    png = Path(png)
    if not png.is_file():
        raise FileNotFoundError(f"no saved edit at '{png}': give the PNG the live editor's Save button wrote.")
    try:
        with Image.open(png) as image:
            text = dict(getattr(image, "text", {}) or {}).get(TEXT_KEY)
    except Exception as err:
        raise UnreadableFileError(png, f"cannot be read as a PNG ({type(err).__name__})",
                                  "Give the PNG the live editor's Save button wrote.") from None
    sidecar = png.with_suffix(".json")
    if text is None and sidecar.is_file():
        text = sidecar.read_text()
    if text is None:
        raise UnreadableFileError(png, f"holds no dclip edit settings (no '{TEXT_KEY}' text chunk, and no sidecar "
                                       f"'{sidecar.name}' beside it)",
                                  "Give a PNG saved by the live editor's Save button (notebook 06).")
    try:
        settings = json.loads(text)
    except json.JSONDecodeError:
        raise UnreadableFileError(png, "holds damaged edit settings (its JSON cannot be parsed)",
                                  "Save the edit again from the live editor.") from None
    if settings.get("format") != FORMAT:
        raise UnreadableFileError(png, f"holds edit settings of format {settings.get('format')!r}, not '{FORMAT}'",
                                  "Save the edit again with this version of dclip.")
    return settings


def needed_files(settings: dict, png: str | os.PathLike) -> list[tuple[Path, str, str | None]]:
    """(path, what it is, sha256 or None) of every file redoing the edit reads, relative paths from the PNG's
    folder: the input image, then each fine-tuned model's weights and sidecar."""
    folder = Path(png).parent
    files = [(folder / settings["input"], "its input image", None)]
    for model in settings["models"]:
        weights = folder / model["path"]
        files.append((weights, f"the weights of its fine-tuned model '{model['label']}'", model["sha256"]))
        files.append((weights.with_suffix(".json"), f"the sidecar of its fine-tuned model '{model['label']}'", None))
    return files
