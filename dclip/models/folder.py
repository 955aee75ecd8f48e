"""The dclip model file: ``<name>.safetensors`` beside a ``<name>.json`` sidecar that says how to build it.

Every model dclip writes has this form: a fine-tune (:func:`dclip.method.finetune.save_finetuned`: the sidecar's
``unet_config`` is the diffusers ``UNet2DModel`` architecture) and the shipped toy models in
:data:`SHIPPED_DIR` (the toy DDPM with ``unet_config``, the toy CLIP with ``clip_config``, the judge), which
:func:`dclip.models.unet.load_unet` and :func:`dclip.models.clip.load_clip` read as the preset ``"toy"``
like any other file. Weights may be stored in fp16 to keep the files small; they are read back in fp32.

The readers of every weight file a user gives live here too, so that each says what is wrong in one line
(:class:`~dclip.runtime.errors.UnreadableFileError`): :func:`read_tensors` (safetensors), :func:`read_torch_file`
(``torch.save`` files: ``.pt``, ``.pth``, ``.ckpt``, ``.bin``) and :func:`check_weights_file` (before a library,
open_clip, reads a file itself).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..runtime.atomic import atomic_write_all
from ..runtime.errors import UnreadableFileError

if TYPE_CHECKING:  # torch is imported where tensors are read or written, so that --help stays light
    import torch

__all__ = ["SHIPPED_DIR", "TOY_MODELS_ENV", "toy_models_dir", "user_models_dir", "is_shipped_dir", "shipped_file",
           "read_sidecar", "read_tensors", "read_torch_file", "check_weights_file", "write_model"]

#: The models that ship with dclip (package data), rebuilt by ``make toy-models``.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
#: The environment variable naming a folder of retrained toy models to read instead of the shipped ones
#: (``--toy-models DIR`` on the command line sets it).
TOY_MODELS_ENV = "DCLIP_TOY_MODELS"


def toy_models_dir() -> Path:
    """The folder the toy models are read from: ``$DCLIP_TOY_MODELS`` when set, else :data:`SHIPPED_DIR`.

    A set variable that names no folder is an error naming it (a typo would otherwise fall back silently)."""
    text = os.environ.get(TOY_MODELS_ENV, "").strip()
    if not text:
        return SHIPPED_DIR
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{TOY_MODELS_ENV}={text} is not a folder. Point it (or --toy-models) at the folder "
                                "`python -m dclip toy train` wrote, or unset it to use the shipped models.")
    return folder


def user_models_dir() -> Path:
    """Where ``python -m dclip toy train`` writes by default: ``toy-models/`` in dclip's data folder
    (:func:`dclip.runtime.cache.cache_root`; never evicted or cleared by the cache), outside the package."""
    from ..runtime.cache import cache_root

    return cache_root() / "toy-models"


def is_shipped_dir(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is the package's own :data:`SHIPPED_DIR` (however it is spelled)."""
    return Path(folder).expanduser().resolve() == SHIPPED_DIR


def shipped_file(name: str, folder: str | os.PathLike | None = None) -> Path:
    """``<folder>/<name>.safetensors`` of a toy model; a clear error when it is missing.

    Without ``folder``: from :func:`toy_models_dir`, and from :data:`SHIPPED_DIR` for a model that folder lacks
    (a retrained DDPM alone still finds the shipped CLIP and judge)."""
    if folder is None:
        folder = toy_models_dir()
        if not (folder / f"{name}.safetensors").is_file():
            folder = SHIPPED_DIR
    path = Path(folder) / f"{name}.safetensors"
    if not path.is_file():
        where = ("It ships with dclip; in a source checkout rebuild it with `make toy-models`."
                 if is_shipped_dir(folder) else f"Train it there with `python -m dclip toy train ... --out {folder}`.")
        raise FileNotFoundError(f"the toy model '{name}' is not at {path}. {where}")
    return path


def read_sidecar(path: str | os.PathLike) -> dict:
    """The JSON sidecar of a model file (``x.safetensors`` -> ``x.json``); ``{}`` when there is none.

    A sidecar that is not a JSON object (cut short, damaged, another file) is an
    :class:`~dclip.runtime.errors.UnreadableFileError` naming it and the fix."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        return {}
    fix = (f"Copy it again together with '{sidecar.with_suffix('.safetensors').name}', or delete both and "
           "re-run the fine-tune that wrote them.")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UnreadableFileError(sidecar, "is not a JSON sidecar: it is not text", fix) from None
    except json.JSONDecodeError as err:
        text = err.doc.strip()
        cut = text.startswith("{") and not text.endswith("}")  # an object that never closes
        why = "is truncated (an interrupted copy?)" if cut else f"is not valid JSON ({err.msg}, line {err.lineno})"
        raise UnreadableFileError(sidecar, why, fix) from None
    if not isinstance(meta, dict):
        raise UnreadableFileError(sidecar, f"is not a dclip sidecar: it holds a JSON {type(meta).__name__}, "
                                           "not an object", fix)
    return meta


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, floating-point ones in fp32 (files may store them in fp16).

    A file that is truncated, or not a safetensors file at all, is an
    :class:`~dclip.runtime.errors.UnreadableFileError` naming it, what is wrong and the fix."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    audit_read(path)
    try:
        tensors = load_file(str(path))
    except SafetensorError as err:
        raise _not_safetensors(Path(path), err) from None
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def _not_safetensors(path: Path, err: Exception) -> UnreadableFileError:
    """What is wrong with a file safetensors refused: its size against what its header says it holds.

    The format: 8 bytes (little-endian header length n), n bytes of JSON header (each tensor's
    ``data_offsets``), then the tensors' bytes."""
    size = path.stat().st_size
    again = "Copy it again from where it came from, or re-run the fine-tune that wrote it."
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = f.read(min(n, 100_000_000))
    if size == 0:
        return UnreadableFileError(path, "is empty (0 bytes)", again)
    if size < 8 or n > 100_000_000 or not header.startswith(b"{"):
        kind = " (it looks like a PyTorch checkpoint: name it .pt or .pth)" if _pytorch(path) else ""
        return UnreadableFileError(path, f"is not a safetensors file{kind}",
                                   "Pass the .safetensors file a dclip fine-tune wrote, or a checkpoint "
                                   "with its own suffix (.ckpt, .pt, .pth).")
    if len(header) < n:
        return UnreadableFileError(path, f"is truncated: it ends inside its header ({size} bytes; an interrupted "
                                         "copy or download?)", again)
    try:
        entries = json.loads(header[:n])
        needed = 8 + n + max((e["data_offsets"][1] for k, e in entries.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError):
        return UnreadableFileError(path, f"is a damaged safetensors file: its header cannot be read ({err})", again)
    if size < needed:
        return UnreadableFileError(path, f"is truncated: it holds {size:,} of the {needed:,} bytes its header "
                                         "describes (an interrupted copy or download?)", again)
    return UnreadableFileError(path, f"is a damaged safetensors file ({err})", again)


#: The audit event (PEP 578) raised for each weight file read here: safetensors opens files outside Python's
#: ``open``, which is audited already; ``python -m dclip figures`` listens for both to learn a notebook's models.
READ_EVENT = "dclip.read_weights"


def audit_read(path: str | os.PathLike) -> None:
    """Raise the :data:`READ_EVENT` audit event for ``path`` (nothing happens unless a hook listens)."""
    import sys

    sys.audit(READ_EVENT, os.path.abspath(path))


#: What to do about a weight file that is cut short or damaged.
AGAIN = "Download or copy it again from where it came from."


def _truncated_archive(path: Path) -> UnreadableFileError | None:
    """A ``torch.save`` zip archive without its end (the central directory zip readers start from), else None."""
    import zipfile

    size = path.stat().st_size
    if size == 0:
        return UnreadableFileError(path, "is empty (0 bytes)", AGAIN)
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if zipped and not zipfile.is_zipfile(path):
        return UnreadableFileError(path, f"is truncated: a PyTorch archive without its end ({size:,} bytes; an "
                                         "interrupted copy or download?)", AGAIN)
    return None


def read_torch_file(path: str | os.PathLike, what: str = "weight file") -> object:
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors and plain values, never arbitrary
    objects. A file it cannot read is an :class:`~dclip.runtime.errors.UnreadableFileError` saying whether it is
    empty, truncated, more than tensors, or not a PyTorch file; ``what`` names it in the fix."""
    import pickle

    import torch

    path = Path(path)
    problem = _truncated_archive(path)
    if problem is not None:
        raise problem
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "truncated" in str(err):
            raise UnreadableFileError(path, "is truncated (an interrupted copy or download?)", AGAIN) from None
        raise UnreadableFileError(path, "is not a tensors-only file: it holds more than tensors and plain values, "
                                        "and dclip reads weights with weights_only=True (never unpickling "
                                        "arbitrary objects)",
                                  f"Re-save only the {what}'s tensors: torch.save(model.state_dict(), path).") from None
    except (RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableFileError(path, f"is not a readable PyTorch file ({first})",
                                  f"Pass the {what} itself (a torch.save file or .safetensors), or {AGAIN[0].lower()}"
                                  f"{AGAIN[1:]}") from None


def check_weights_file(path: str | os.PathLike) -> None:
    """Fail now, in one line, on a weight file that is visibly incomplete (empty; a safetensors file shorter than
    its header says; a PyTorch archive without its end), before a library that reports it less clearly
    (open_clip) reads it. Costs a header read, not a load."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    audit_read(path)
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except SafetensorError as err:
            raise _not_safetensors(path, err) from None
        return
    problem = _truncated_archive(path)
    if problem is not None:
        raise problem


def _pytorch(path: Path) -> bool:
    """Whether a file starts like a ``torch.save`` file (a zip archive, or a pickle)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head == b"PK" or head[:1] == b"\x80"


def write_model(module: torch.nn.Module, path: str | os.PathLike, meta: dict, *, half: bool = False) -> Path:
    """``module``'s weights as ``path`` (made ``.safetensors``; floating tensors in fp16 when ``half``) and
    ``meta`` as its ``.json`` sidecar, written as one (:func:`dclip.runtime.atomic.atomic_write_all`: both
    complete, the sidecar renamed last, or neither, also on Ctrl-C; a file without its sidecar is an
    interrupted write)."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in module.state_dict().items()}
    text = json.dumps(meta, indent=1, default=str)
    atomic_write_all([(path, lambda tmp: save_file(tensors, str(tmp))),
                      (path.with_suffix(".json"), lambda tmp: tmp.write_text(text))])
    return path
