"""``load_unet``: one diffusers ``UNet2DModel`` for every checkpoint the paper uses.

Sources understood (the layout of a file is recognised from its state dict's keys):

* a preset name (:data:`PRESETS`): ``celeba_hq``, ``lsun_church``, ``lsun_bedroom``, ``afhq_dog``,
  ``tiny`` (random weights, 32 px, for tests and the CPU smoke profile) and ``toy`` (the DDPM trained on
  dclip's synthetic cartoon faces, 32 px: the CPU ``toy`` profile; a dclip model file shipped in
  :data:`dclip.models.folder.SHIPPED_DIR`, read like any fine-tune);
* a file in the ermongroup/ddim ``Model`` layout (``celeba_hq.ckpt``, ``church_outdoor.ckpt``,
  ``bedroom.ckpt``, every DiffusionCLIP fine-tuned ``.pth``), in the guided-diffusion (ADM) layout
  (``afhq_dog_4m.pt``), or in diffusers' own key names (dclip's fine-tuned ``.safetensors``);
* a local diffusers folder or a Hugging Face Hub id (``google/ddpm-ema-celebahq-256``).

Files are read with ``torch.load(weights_only=True)`` or safetensors, never as arbitrary pickles.
A checkpoint that does not fit its architecture is an error naming the offending keys.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import UNet2DModel

from .folder import read_sidecar, read_tensors, read_torch_file, shipped_file
from .layouts import adm, ermongroup
from .layouts.common import describe_keys
from .weights import WeightsNotFoundError, hub_reachable, missing_weights, weights_dir

__all__ = ["Preset", "PRESETS", "load_unet", "load_state_dict", "build_unet"]

# The architecture of the paper's 256² DDPM checkpoints (configs/celeba.yml, church.yml, bedroom.yml).
_DDPM_256 = {"type": "simple", "in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": [1, 1, 2, 2, 4, 4],
             "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0, "var_type": "fixedsmall",
             "resamp_with_conv": True, "image_size": 256}
# DiffusionCLIP's i_DDPM("AFHQ") (models/improved_ddpm/script_util.py).
_ADM_AFHQ = {"image_size": 256, "num_channels": 128, "num_res_blocks": 1, "channel_mult": "",
             "learn_sigma": True, "class_cond": False, "attention_resolutions": "16", "num_heads": 4,
             "num_head_channels": 64, "num_heads_upsample": -1, "use_scale_shift_norm": True,
             "dropout": 0.0, "resblock_updown": True, "use_new_attention_order": False}
_TINY = {"type": "simple", "in_channels": 3, "out_ch": 3, "ch": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 1,
         "attn_resolutions": [8], "dropout": 0.0, "var_type": "fixedsmall", "resamp_with_conv": True,
         "image_size": 32}

_LAYOUTS = {"ddim": ermongroup, "adm": adm}


@dataclass(frozen=True)
class Preset:
    """A pretrained model of the paper: its architecture and where its weights come from.

    ``filename`` is the original checkpoint's name, looked up in the weights folder
    (``$DCLIP_WEIGHTS``); ``hub_repo`` is a diffusers copy on the HF Hub that is downloaded
    (through the HF cache) when the file is absent; ``url`` is the original download address.
    """

    name: str
    layout: str
    config: dict = field(repr=False)
    filename: str | None = None
    url: str | None = None
    hub_repo: str | None = None
    description: str = ""


_S3 = "https://image-editing-test-12345.s3-us-west-2.amazonaws.com/checkpoints/"
PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("celeba_hq", "ddim", _DDPM_256, "celeba_hq.ckpt", _S3 + "celeba_hq.ckpt",
           "google/ddpm-ema-celebahq-256", "DDPM on CelebA-HQ 256² (faces)"),
    Preset("lsun_church", "ddim", _DDPM_256, "church_outdoor.ckpt", _S3 + "church_outdoor.ckpt",
           "google/ddpm-ema-church-256", "DDPM on LSUN church outdoor 256²"),
    Preset("lsun_bedroom", "ddim", _DDPM_256, "bedroom.ckpt", _S3 + "bedroom.ckpt",
           "google/ddpm-ema-bedroom-256", "DDPM on LSUN bedroom 256²"),
    Preset("afhq_dog", "adm", _ADM_AFHQ, "afhq_dog_4m.pt",
           "https://drive.google.com/file/d/14OG_o3aa8Hxmfu36IIRyOgRwEP6ngLdo/view", None,
           "ILVR's ADM on AFHQ-dog 256² (learned variance)"),
    Preset("tiny", "ddim", _TINY, description="random weights, 32 px: tests and the CPU smoke profile"),
    Preset("toy", "folder", {}, "toy_ddpm",
           description="DDPM trained on dclip's synthetic cartoon faces, 32 px, shipped with dclip (toy profile)"),
]}


def _detect_layout(state_dict: dict) -> str:
    if ermongroup.matches(state_dict):
        return "ddim"
    if adm.matches(state_dict):
        return "adm"
    if "conv_in.weight" in state_dict and any(k.startswith("down_blocks.") for k in state_dict):
        return "diffusers"
    raise ValueError(f"unrecognised checkpoint layout (first keys: {describe_keys(state_dict)}). dclip reads "
                     "the ermongroup/ddim Model layout, the guided-diffusion (ADM) layout and diffusers' "
                     "UNet2DModel keys.")


def load_state_dict(path: str | os.PathLike) -> dict:
    """Tensors of a checkpoint file: safetensors (floating tensors in fp32, :func:`dclip.models.folder.read_tensors`),
    or ``torch.load(weights_only=True)`` (:func:`dclip.models.folder.read_torch_file`); a file either cannot read
    is one :class:`~dclip.runtime.errors.UnreadableFileError` line."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_tensors(path)
    obj = read_torch_file(path, "UNet checkpoint")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"'{path}' does not hold a state dict (name -> tensor).")
    return obj


def build_unet(unet_config: dict, state_dict: dict | None = None, *, seed: int = 0) -> UNet2DModel:
    """A ``UNet2DModel`` from its config, loaded strictly from ``state_dict`` or randomly initialised."""
    if state_dict is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return UNet2DModel(**unet_config).eval()
    with torch.device("meta"):
        unet = UNet2DModel(**unet_config)
    result = unet.load_state_dict(state_dict, strict=False, assign=True)
    problems = [("missing", result.missing_keys), ("unexpected", result.unexpected_keys)]
    problems = [f"{kind} keys {describe_keys(keys)}" for kind, keys in problems if keys]
    if problems:
        raise ValueError("checkpoint does not fit the architecture: " + "; ".join(problems))
    return unet.eval()


def _config_for(layout: str, config) -> tuple[str, dict] | None:
    """(preset name or 'custom', layout config) for an explicit ``config`` argument."""
    if config is None:
        return None
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown preset '{config}'; choose one of {sorted(PRESETS)} or pass a config dict.")
        preset = PRESETS[config]
        if preset.layout != layout:
            raise ValueError(f"the checkpoint is in the {layout} layout but preset '{config}' describes a "
                             f"{preset.layout}-layout model; pass the matching preset or a config dict.")
        return config, preset.config
    return "custom", dict(config)


def _from_layout_state_dict(state_dict: dict, layout: str, config, origin: str) -> UNet2DModel:
    module = _LAYOUTS[layout]
    explicit = _config_for(layout, config)
    candidates = [explicit] if explicit else [(p.name, p.config) for p in PRESETS.values() if p.layout == layout]
    errors = []
    for name, cfg in candidates:
        try:
            converted = module.convert(state_dict, cfg)
        except ValueError as err:
            errors.append(f"  {name}: {err}")
            continue
        return build_unet(module.unet_kwargs(cfg), converted)
    if explicit:
        raise ValueError(f"'{origin}' does not match config '{explicit[0]}':\n" + "\n".join(errors))
    raise ValueError(f"'{origin}' ({layout} layout) matches none of the presets; pass config= (a preset "
                     "name or a dict of the architecture). Tried:\n" + "\n".join(errors))


def _diffusers_config_for(path: Path, config) -> dict:
    if isinstance(config, dict) and "block_out_channels" in config:
        return config
    meta = read_sidecar(path)
    if "unet_config" in meta:
        return meta["unet_config"]
    if isinstance(config, str) and config in PRESETS:
        preset = PRESETS[config]
        return _LAYOUTS[preset.layout].unet_kwargs(preset.config)
    raise ValueError(f"'{path}' holds diffusers UNet2DModel weights but no architecture: put its sidecar "
                     f"'{path.with_suffix('.json').name}' beside it (dclip.method.finetune writes one) or pass config=<preset name>.")


def _from_file(path: Path, config) -> UNet2DModel:
    state_dict = load_state_dict(path)
    layout = _detect_layout(state_dict)
    if layout == "diffusers":
        return build_unet(_diffusers_config_for(path, config), state_dict)
    return _from_layout_state_dict(state_dict, layout, config, str(path))


_SAFETENSORS, _BIN = "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"


def _hub_has_safetensors(repo_id: str) -> bool:
    """Whether a Hub diffusers repo holds safetensors weights, asked of the HF cache first.

    The paper's ``google/ddpm-ema-*-256`` copies hold only ``diffusion_pytorch_model.bin`` (read with
    ``weights_only=True``); telling diffusers so spares its "error occurred while trying to fetch ...
    safetensors" / "defaulting to unsafe serialization" messages on every successful load.
    """
    from huggingface_hub import file_exists, try_to_load_from_cache

    safe = try_to_load_from_cache(repo_id, _SAFETENSORS)
    if isinstance(safe, str):
        return True
    if safe is not None or isinstance(try_to_load_from_cache(repo_id, _BIN), str):
        return False  # the cache recorded that the Hub has no safetensors, or holds the .bin copy
    if hub_reachable():
        return file_exists(repo_id, _SAFETENSORS)
    return True  # offline with nothing cached: the load below fails with the offline message


def _from_diffusers(source: str) -> UNet2DModel:
    """A diffusers folder on disk, or a Hub id through the HF cache (no retries when offline).

    The weights format (safetensors or ``.bin``) is decided before loading and passed to diffusers
    as ``use_safetensors``, so a repository with only ``.bin`` loads without a spurious error.
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        sub = "unet" if (folder / "unet" / "config.json").is_file() else None
        safe = (folder / (sub or "") / _SAFETENSORS).is_file()
        return _pretrained(folder, subfolder=sub, use_safetensors=safe)
    safe = _hub_has_safetensors(source)
    try:
        return _pretrained(source, local_files_only=True, use_safetensors=safe)
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        raise WeightsNotFoundError(
            f"the diffusers model '{source}' is not in the HF Hub cache and the Hub cannot be reached "
            f"(offline).\n  fix: on a machine with network run `hf download {source}` and copy the cache "
            "(~/.cache/huggingface), or pass a local folder or checkpoint file.")
    return _pretrained(source, use_safetensors=safe)


def _pretrained(source, **kwargs) -> UNet2DModel:
    """``UNet2DModel.from_pretrained`` in eval mode, without the deprecation notice diffusers' config
    loader triggers in huggingface_hub on every call (it passes ``local_dir_use_symlinks``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
        return UNet2DModel.from_pretrained(source, low_cpu_mem_usage=False, **kwargs).eval()


def _from_preset(preset: Preset) -> UNet2DModel:
    if preset.layout == "folder":  # a dclip model file shipped as package data (the toy DDPM)
        return _from_file(shipped_file(preset.filename), None)
    module = _LAYOUTS[preset.layout]
    if preset.filename is None:  # the random-weight test preset
        return build_unet(module.unet_kwargs(preset.config))
    local = weights_dir() / preset.filename
    if local.is_file():
        return _from_layout_state_dict(load_state_dict(local), preset.layout, preset.name, str(local))
    if preset.hub_repo is None:  # only the original file will do, and it is not in the weights folder
        raise missing_weights(f"{preset.description} (preset '{preset.name}')", preset.filename, preset.url,
                              downloadable=False)
    try:
        return _from_diffusers(preset.hub_repo)
    except WeightsNotFoundError as err:
        raise WeightsNotFoundError(
            f"preset '{preset.name}' ({preset.description}): no local '{preset.filename}' in {weights_dir()} "
            f"and its diffusers copy cannot be fetched.\n  fix: put the original file there (from "
            f"{preset.url}), set DCLIP_WEIGHTS to the folder holding it, or bring '{preset.hub_repo}' into "
            f"the HF cache.\n  ({err})") from None


def load_unet(source: str | os.PathLike, config: str | dict | None = None) -> UNet2DModel:
    """Load a pretrained or fine-tuned diffusion UNet as a diffusers ``UNet2DModel`` in eval mode.

    Args:
        source: a preset name, a checkpoint file, a local diffusers folder, or a Hub id.
        config: for a checkpoint file, the architecture: a preset name, or a dict with the keys of
            the layout's original config (``ddim``: the authors' yml ``model:`` keys plus
            ``image_size``; ADM: ``create_model`` keywords). ``None`` tries the presets of the file's
            layout; a file in diffusers' key names takes its architecture from its ``.json`` sidecar.
    """
    text = str(source)
    if text in PRESETS:
        return _from_preset(PRESETS[text])
    path = Path(text).expanduser()
    if path.is_file():
        return _from_file(path, config)
    if path.is_dir() or (text.count("/") == 1 and not text.startswith((".", "/", "~"))):
        return _from_diffusers(text)
    raise FileNotFoundError(f"'{text}' is neither a preset ({', '.join(PRESETS)}), an existing file or folder, "
                            "nor a Hub id of the form 'org/name'.")
