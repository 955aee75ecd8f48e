"""LoRA adapters for DiffusionCLIP fine-tuning (beyond the paper): train a low-rank update of the UNet's
attention and convolution weights instead of all of them, store only that update, and mix several of them
without several copies of the model.

A LoRA adapter replaces a layer's weight W by W + (α/r)·B·A with A (r × in) and B (out × r) trained and W frozen;
B starts at zero, so an untrained adapter computes exactly the original model (Hu et al. 2021, "LoRA"). dclip uses
peft, the library diffusers itself uses for adapters (``peft.inject_adapter_in_model``); for a convolution
peft's A is a convolution with the layer's kernel into r channels and B a 1×1 convolution out of them.

* :func:`add_lora` puts a new trainable adapter into a model (the fine-tune's copy of the base);
* :func:`save_adapter` writes only the adapter's tensors, as a dclip model file (safetensors + JSON sidecar
  with ``"adapter"``);
* :func:`load_adapter` puts an adapter file into the *host* of a base model, one frozen copy of the base per
  base model that holds every adapter loaded for it, and returns an :class:`AdapterView`: a module that runs
  the host with that adapter switched on. Eq. 14's noise mix over n adapters therefore keeps two models in
  memory (the base and its host), not n + 1.
"""
from __future__ import annotations

import copy
import hashlib
import os
import warnings
import weakref
from pathlib import Path

import torch

__all__ = ["LORA_TARGETS", "ADAPTERS", "add_lora", "adapter_state", "save_adapter", "is_adapter_file",
           "load_adapter", "AdapterView", "adapter_host"]

#: The layers that get adapters: the attention projections and the ResNet blocks' two 3×3 convolutions of
#: every diffusers ``UNet2DModel`` (a regular expression on module names, as peft's ``target_modules``).
LORA_TARGETS = r".*(to_q|to_k|to_v|to_out\.0|resnets\.\d+\.conv1|resnets\.\d+\.conv2)"
#: The adapter kinds :class:`dclip.method.finetune.FinetuneConfig` accepts ("none": the paper's full fine-tune).
ADAPTERS = ("none", "lora")
_TRAINING_NAME = "edit"


def _lora_config(rank: int, alpha: float | None = None):
    from peft import LoraConfig

    if rank < 1:
        raise ValueError(f"the LoRA rank must be ≥ 1; got {rank}.")
    return LoraConfig(r=int(rank), lora_alpha=float(alpha if alpha is not None else rank),
                      target_modules=LORA_TARGETS, lora_dropout=0.0, init_lora_weights=True)


def add_lora(model: torch.nn.Module, rank: int, *, alpha: float | None = None,
             name: str = _TRAINING_NAME) -> torch.nn.Module:
    """Insert a LoRA adapter ``name`` of rank ``rank`` (scale α/r, α = r by default) into ``model`` in place, on
    :data:`LORA_TARGETS`; the base weights are frozen and only the adapter trains. Returns ``model``, which
    computes exactly what it did before until the adapter is trained (B = 0)."""
    from peft import inject_adapter_in_model

    model.requires_grad_(False)
    model = inject_adapter_in_model(_lora_config(rank, alpha), model, adapter_name=name)
    _activate(model, name)
    return model


def adapter_state(model: torch.nn.Module, name: str = _TRAINING_NAME) -> dict[str, torch.Tensor]:
    """The tensors of adapter ``name`` in ``model`` (peft's key names, without the adapter's name)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model, adapter_name=name).items()}


def _tuner_layers(model: torch.nn.Module) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def _activate(model: torch.nn.Module, name: str, trainable: bool = True) -> None:
    """Switch every adapted layer of ``model`` to adapter ``name`` alone (the others stay loaded, unused);
    ``trainable=False`` keeps its weights frozen (peft's switch makes the active adapter trainable)."""
    for layer in _tuner_layers(model):
        if list(layer.active_adapters) != [name]:
            layer.set_adapter(name)
            if not trainable:
                layer.requires_grad_(False)
        layer.enable_adapters(True)


def save_adapter(model: torch.nn.Module, path: str | os.PathLike, meta: dict, *,
                 name: str = _TRAINING_NAME) -> Path:
    """Write adapter ``name`` of ``model`` as ``path`` (safetensors) with ``meta`` in its JSON sidecar, atomically
    (both files or neither, :func:`dclip.runtime.atomic.atomic_write_all`). ``meta["adapter"]`` must say its
    kind, rank and α (``{"kind": "lora", "rank": 4, "alpha": 4}``)."""
    import json

    from safetensors.torch import save_file

    from ..runtime.atomic import atomic_write_all

    if "adapter" not in meta:
        raise ValueError("the sidecar of an adapter must say what it is: meta['adapter'] = {'kind', 'rank', 'alpha'}.")
    path = Path(path).with_suffix(".safetensors")
    tensors = adapter_state(model, name)
    text = json.dumps(meta, indent=1, default=str)
    atomic_write_all([(path, lambda p: save_file(tensors, str(p))),
                      (path.with_suffix(".json"), lambda p: p.write_text(text, encoding="utf-8"))])
    return path


def is_adapter_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a dclip adapter file (its sidecar has ``"adapter"``)."""
    from ..models.folder import read_sidecar

    return Path(path).suffix == ".safetensors" and "adapter" in read_sidecar(path)


class AdapterView(torch.nn.Module):
    """The base model with one adapter switched on: called like the UNet (``view(x, t).sample``), it switches
    its host to its adapter and runs it. Views of one host share its weights; each call switches, so views may
    be mixed step by step (:func:`dclip.method.mixing.noise_mix`)."""

    def __init__(self, host: torch.nn.Module, name: str, meta: dict | None = None):
        super().__init__()
        self.host, self.adapter_name, self.meta = host, name, dict(meta or {})

    @property
    def config(self):
        return self.host.config

    @property
    def dtype(self) -> torch.dtype:
        return self.host.dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor, *args, **kwargs):
        _activate(self.host, self.adapter_name, trainable=False)
        return self.host(x, t, *args, **kwargs)


_HOSTS: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()


def adapter_host(base: torch.nn.Module) -> torch.nn.Module:
    """The one frozen copy of ``base`` that holds the adapters loaded for it (made at the first load, kept while
    ``base`` lives). ``base`` itself is never modified."""
    host = _HOSTS.get(base)
    if host is None:
        host = copy.deepcopy(base).eval().requires_grad_(False)
        _HOSTS[base] = host
    return host


def _file_name(path: Path) -> str:
    """A name for an adapter inside its host: unique per file content."""
    digest = hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()
    return f"a{digest}"


def load_adapter(path: str | os.PathLike, base: torch.nn.Module) -> AdapterView:
    """The adapter file ``path`` (:func:`save_adapter`) applied to ``base``: an :class:`AdapterView` of
    ``base``'s host (:func:`adapter_host`). Loading the same file twice reuses the adapter already loaded.
    A broken file is an :class:`~dclip.runtime.errors.UnreadableFileError`, and so is an adapter whose layers
    do not fit ``base``."""
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    from ..models.folder import read_sidecar, read_tensors
    from ..runtime.errors import UnreadableFileError

    path = Path(path)
    meta = read_sidecar(path)
    spec = meta.get("adapter") or {}
    if spec.get("kind") != "lora":
        raise UnreadableFileError(path, f"is not a LoRA adapter (its sidecar's adapter is {spec or 'missing'})",
                                  "Load a full fine-tune with dclip.method.finetune.load_finetuned instead.")
    tensors = read_tensors(path)
    host = adapter_host(base)
    name = _file_name(path)
    if name not in _loaded(host):
        with warnings.catch_warnings():  # peft warns that a model holds several adapters: that is the point here
            warnings.simplefilter("ignore", UserWarning)
            inject_adapter_in_model(_lora_config(int(spec["rank"]), spec.get("alpha")), host, adapter_name=name)
        result = set_peft_model_state_dict(host, tensors, adapter_name=name)
        missing = [k for k in getattr(result, "missing_keys", []) if f".{name}." in k and "lora_" in k]
        unexpected = list(getattr(result, "unexpected_keys", []))
        if missing or unexpected:
            raise UnreadableFileError(path, f"does not fit this base model ({len(missing)} adapter tensors missing, "
                                            f"{len(unexpected)} unexpected, e.g. {(missing + unexpected)[0]})",
                                      "Apply it to the base model it was trained on (its sidecar's 'base').")
        host.requires_grad_(False)
    return AdapterView(host, name, meta)


def _loaded(host: torch.nn.Module) -> set[str]:
    return {name for layer in _tuner_layers(host) for name in getattr(layer, "lora_A", {})}
