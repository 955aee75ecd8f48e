"""A fine-tune's files: the weights (or a LoRA adapter) as safetensors beside a JSON sidecar with the base model,
the prompts and every setting; reading them back, with a check that they fit the base model they are applied to.
(:mod:`dclip.method.finetune` re-exports both functions.)
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from ..runtime.fast import device_of

__all__ = ["save_finetuned", "load_finetuned"]


def save_finetuned(result, path: str | os.PathLike, *, base: str = "") -> Path:
    """Write a :class:`~dclip.method.finetune.FinetuneResult`'s weights as safetensors plus a JSON sidecar (architecture,
    prompts, settings).

    Both files are written atomically (:func:`dclip.models.folder.write_model`). ``dclip.load_unet(path)``
    reads them back. A LoRA fine-tune (``adapter="lora"``) writes only its adapter
    (:func:`dclip.method.adapters.save_adapter`); :func:`load_finetuned` applies it to its base model.
    """
    from ..models.folder import write_model
    from ..version import __version__

    meta = {"unet_config": _architecture(result.model.config),
            "base": base, "source": result.config.source, "target": result.config.target,
            "hyperparameters": asdict(result.config), "dclip_version": __version__,
            "fast_path": asdict(result.fast) if result.fast is not None else None,
            "world_size": result.world_size, "global_batch_size": result.world_size * result.config.batch_size,
            "final_loss": result.history[-1]["loss"] if result.history else None, "stopped": result.stopped}
    if result.config.adapter == "lora":
        from .adapters import LORA_TARGETS, save_adapter

        meta["adapter"] = {"kind": "lora", "rank": result.config.rank, "alpha": result.config.rank,
                           "targets": LORA_TARGETS}
        return save_adapter(result.model, path, meta)
    meta["unet_config"] = dict(result.model.config)
    return write_model(result.model, path, meta)


def _architecture(config) -> dict:
    skip = {"_class_name", "_diffusers_version", "_name_or_path", "_use_default_values"}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items() if k not in skip}


def load_finetuned(path: str | os.PathLike, base: torch.nn.Module | None = None, *,
                   base_name: str | None = None) -> torch.nn.Module:
    """Load a fine-tuned model (dclip safetensors or the authors' .pth); check it fits ``base`` if given.

    A LoRA adapter file (:func:`save_finetuned` of an ``adapter="lora"`` fine-tune) needs ``base``: it comes
    back as a :class:`dclip.method.adapters.AdapterView` of ``base`` (adapters of one base share one copy
    of it). A broken file is an :class:`~dclip.runtime.errors.UnreadableFileError` (from the readers of
    :mod:`dclip.models.folder`), and so is a fine-tune of another base model: one whose architecture
    differs from ``base``'s, or whose sidecar names a preset other than ``base_name`` (a preset name
    such as ``"celeba_hq"``; a file path is not compared)."""
    from ..models.folder import read_sidecar
    from ..models.unet import load_unet
    from ..runtime.errors import UnreadableFileError

    meta = read_sidecar(path) if Path(path).suffix == ".safetensors" else {}
    trained_from = str(meta.get("base") or "")
    _check_base_name(path, trained_from, base_name)
    if "adapter" in meta:
        from .adapters import load_adapter

        if base is None:
            raise UnreadableFileError(path, "is a LoRA adapter, which holds only the change to its base model",
                                      f"Pass the base model it was trained on ('{trained_from or 'its sidecar: base'}'): "
                                      "load_finetuned(path, base=load_unet(...)).")
        _check_config(path, trained_from, meta.get("unet_config") or {}, base)
        return load_adapter(path, base)
    model = load_unet(path, config=None)
    if base is not None:
        _check_config(path, trained_from, model.config, base)
    return model.to(device_of(base)) if base is not None else model


def _check_base_name(path, trained_from: str, base_name: str | None) -> None:
    """A fine-tune of one preset (its sidecar's ``base``) is not edited with another."""
    from ..models.unet import PRESETS
    from ..runtime.errors import UnreadableFileError

    if base_name and trained_from in PRESETS and str(base_name) in PRESETS and trained_from != str(base_name):
        raise UnreadableFileError(path, f"is a fine-tune of the '{trained_from}' model (its sidecar says so), "
                                        f"not of '{base_name}'",
                                  f"Use it with the model it was fine-tuned from: '{trained_from}'.")


def _check_config(path, trained_from: str, config, base) -> None:
    from ..runtime.errors import UnreadableFileError

    mine, theirs = _architecture(config), _architecture(base.config)
    diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if diff:
        origin = f" ('{trained_from}', its sidecar says)" if trained_from else ""
        raise UnreadableFileError(path, f"was fine-tuned from a different architecture than the base model{origin}: "
                                        f"{', '.join(f'{k}={mine.get(k)!r} vs {theirs.get(k)!r}' for k in diff[:4])}",
                                  "Load the base model it was trained from.")
