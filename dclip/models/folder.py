"""The dclip model file: ``<name>.safetensors`` beside a ``<name>.json`` sidecar that says how to build it.

Every model dclip writes has this form: a fine-tune (:func:`dclip.method.finetune.save_finetuned`: the sidecar's
``unet_config`` is the diffusers ``UNet2DModel`` architecture) and the shipped toy models in
:data:`SHIPPED_DIR` (the toy DDPM with ``unet_config``, the toy CLIP with ``clip_config``, the judge), which
:func:`dclip.models.unet.load_unet` and :func:`dclip.models.clip.load_clip` read as the preset ``"toy"``
like any other file. Weights may be stored in fp16 to keep the files small; they are read back in fp32.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..runtime.atomic import atomic_write

__all__ = ["SHIPPED_DIR", "shipped_file", "read_sidecar", "read_tensors", "write_model"]

#: The models that ship with dclip (package data), rebuilt by ``make toy-models``.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def shipped_file(name: str, folder: str | os.PathLike = SHIPPED_DIR) -> Path:
    """``<folder>/<name>.safetensors`` of a shipped model; a clear error when it is missing."""
    path = Path(folder) / f"{name}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"the shipped model '{name}' is not at {path}. It ships with dclip; in a source "
                                "checkout rebuild it with `make toy-models` (python -m dclip toy train all).")
    return path


def read_sidecar(path: str | os.PathLike) -> dict:
    """The JSON sidecar of a model file (``x.safetensors`` -> ``x.json``); ``{}`` when there is none."""
    sidecar = Path(path).with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else {}


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, floating-point ones in fp32 (files may store them in fp16)."""
    from safetensors.torch import load_file

    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}


def write_model(module: torch.nn.Module, path: str | os.PathLike, meta: dict, *, half: bool = False) -> Path:
    """``module``'s weights as ``path`` (made ``.safetensors``; floating tensors in fp16 when ``half``) and
    ``meta`` as its ``.json`` sidecar, each written atomically, the sidecar last (a file without its sidecar
    is an interrupted write)."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in module.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    text = json.dumps(meta, indent=1, default=str)
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    return path
