"""guided-diffusion (ADM / improved-DDPM) ``UNetModel`` checkpoints -> diffusers ``UNet2DModel``.

This is the layout of ``afhq_dog_4m.pt`` (DiffusionCLIP's ``i_DDPM("AFHQ")``). The config uses the
keyword names of the authors' ``create_model`` (``num_channels``, ``channel_mult``,
``attention_resolutions``, ``num_head_channels``, ...).

How the two networks line up
----------------------------
* ``time_embed.{0,2}`` -> ``time_embedding.linear_{1,2}``. ADM's sinusoidal embedding is
  ``[cos, sin]`` with frequencies ``exp(-ln(1e4) * i / half)``, i.e. diffusers ``Timesteps`` with
  ``flip_sin_to_cos=True, freq_shift=0``. Its width is ``num_channels`` while diffusers uses
  ``block_out_channels[0]``, so ``channel_mult[0]`` must be 1.
* ``input_blocks.0.0`` -> ``conv_in``; then, per level, ``num_res_blocks`` entries
  ``[ResBlock, (AttentionBlock)]`` -> ``down_blocks[level].resnets[j]`` / ``.attentions[j]``, and
  (except on the last level) one down-sampling entry -> ``down_blocks[level].downsamplers[0]``
  (a ResBlock with ``down=True`` when ``resblock_updown``, else the strided conv ``op``).
* ``middle_block.{0,1,2}`` -> ``mid_block.resnets[0]``, ``.attentions[0]``, ``.resnets[1]``.
* ``output_blocks``: per level from the deepest, ``num_res_blocks + 1`` entries
  ``[ResBlock, (AttentionBlock), (up-sampler)]`` -> ``up_blocks[i].resnets[j]`` / ``.attentions[j]``
  / ``.upsamplers[0]``.
* ``out.{0,2}`` -> ``conv_norm_out`` / ``conv_out``.
* ResBlock: ``in_layers.0`` norm1, ``in_layers.2`` conv1, ``emb_layers.1`` time_emb_proj,
  ``out_layers.0`` norm2, ``out_layers.3`` conv2, ``skip_connection`` conv_shortcut. ADM's FiLM
  ("scale_shift") and additive ("default") time conditioning, and its up/down-sampling of both
  branches after the first norm+SiLU, are exactly what ``ResnetBlock2D`` does.
* AttentionBlock: ``norm`` -> ``group_norm``; ``proj_out`` (a 1x1 Conv1d) -> ``to_out.0`` (Linear);
  the fused 1x1 ``qkv`` conv is split into ``to_q``/``to_k``/``to_v``. In the legacy order its
  ``3C`` output channels are laid out per head as ``[q_h, k_h, v_h]``; in the "new" order as
  ``[q (all heads), k, v]``. Either way each of q, k, v ends up with heads contiguous, which is how
  diffusers splits heads. ADM scales q and k by ``ch**-0.25`` each, the same as diffusers'
  ``ch**-0.5`` on the product.

GroupNorms are 32 groups with eps 1e-5 everywhere. ``attn_norm_num_groups=32`` has to be given
explicitly: with "scale_shift" resnets diffusers would otherwise build the mid-block attention with
no norm at all.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .common import describe_keys, expected_shapes, strip_prefix

__all__ = ["matches", "unet_kwargs", "convert"]

# Keys that only this layout has (checked after stripping a DataParallel "module." prefix).
_SIGNATURE_KEYS = (
    "time_embed.0.weight",
    "input_blocks.0.0.weight",
    "middle_block.0.in_layers.0.weight",
    "out.2.weight",
)

# The authors' create_model() keywords and their defaults.
_CONFIG_DEFAULTS = {
    "channel_mult": "",
    "learn_sigma": False,
    "class_cond": False,
    "use_checkpoint": False,
    "attention_resolutions": "16",
    "num_heads": 1,
    "num_head_channels": -1,
    "num_heads_upsample": -1,
    "use_scale_shift_norm": False,
    "dropout": 0.0,
    "resblock_updown": False,
    "use_fp16": False,
    "use_new_attention_order": False,
}
_CONFIG_REQUIRED = ("image_size", "num_channels", "num_res_blocks")

# create_model()'s channel multipliers when channel_mult is "".
_DEFAULT_CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}

_GROUPS = 32
_EPS = 1e-5

# Sub-module renames (ADM suffix -> diffusers suffix) inside a ResBlock.
_RESBLOCK_PARTS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


# --------------------------------------------------------------------------- detection


def matches(state_dict) -> bool:
    """True when ``state_dict`` has guided-diffusion ``UNetModel`` key names."""
    if not isinstance(state_dict, Mapping):
        return False
    keys = strip_prefix(state_dict).keys()
    return all(k in keys for k in _SIGNATURE_KEYS)


# --------------------------------------------------------------------------- config


def _full_config(config: Mapping) -> dict:
    """The config with create_model()'s defaults filled in; unknown or missing keys raise."""
    unknown = sorted(set(config) - set(_CONFIG_DEFAULTS) - set(_CONFIG_REQUIRED))
    if unknown:
        raise ValueError(
            f"ADM config has keys that create_model() does not take: {unknown}; "
            f"accepted: {sorted([*_CONFIG_REQUIRED, *_CONFIG_DEFAULTS])}"
        )
    missing = [k for k in _CONFIG_REQUIRED if k not in config]
    if missing:
        raise ValueError(f"ADM config is missing required keys: {missing}")
    return {**_CONFIG_DEFAULTS, **config}


def _channel_mult(cfg: dict) -> tuple[float, ...]:
    """Channel multipliers per level; '' (or None/empty list) means the image-size default."""
    mult = cfg["channel_mult"]
    if mult in ("", None) or (isinstance(mult, (list, tuple)) and not mult):
        size = int(cfg["image_size"])
        if size not in _DEFAULT_CHANNEL_MULT:
            raise ValueError(
                f"ADM config: no default channel_mult for image_size {size} "
                f"(create_model knows {sorted(_DEFAULT_CHANNEL_MULT)}); give channel_mult explicitly"
            )
        return _DEFAULT_CHANNEL_MULT[size]
    if isinstance(mult, str):
        mult = [m for m in mult.split(",") if m.strip()]
    return tuple(float(m) for m in mult)


def _attention_downsample_rates(cfg: dict) -> set[int]:
    """create_model() turns resolutions in pixels into down-sampling rates: ds = image_size // res."""
    res = cfg["attention_resolutions"]
    if isinstance(res, str):
        res = [r for r in res.split(",") if r.strip()]
    elif isinstance(res, int):
        res = [res]
    return {int(cfg["image_size"]) // int(r) for r in res}


def _attention_head_dim(cfg: dict, channels: list[int], attn_levels: list[int]) -> int:
    """The single per-head width diffusers needs, or ValueError when ADM's heads do not allow one."""
    head_channels = int(cfg["num_head_channels"])
    mid_channels = channels[-1]
    if head_channels != -1:
        for ch in {*(channels[i] for i in attn_levels), mid_channels}:
            if ch % head_channels:
                raise ValueError(
                    f"ADM config: {ch} attention channels are not divisible by num_head_channels={head_channels}"
                )
        return head_channels
    # A fixed number of heads: the head width is channels // heads at every attention layer.
    heads_down = int(cfg["num_heads"])
    heads_up = heads_down if int(cfg["num_heads_upsample"]) == -1 else int(cfg["num_heads_upsample"])
    layers = [(channels[i], heads_down) for i in attn_levels]
    layers += [(channels[i], heads_up) for i in attn_levels] + [(mid_channels, heads_down)]
    widths = set()
    for ch, heads in layers:
        if ch % heads:
            raise ValueError(f"ADM config: {ch} attention channels are not divisible by {heads} heads")
        widths.add(ch // heads)
    if len(widths) != 1:
        raise ValueError(
            "ADM config: with num_head_channels=-1 the head width differs between attention layers "
            f"({sorted(widths)}); diffusers UNet2DModel supports one head width (attention_head_dim) only"
        )
    return widths.pop()


def _check_supported(cfg: dict, mult: tuple[float, ...]) -> None:
    """Raise ValueError for the create_model() options that UNet2DModel cannot reproduce."""
    if cfg["class_cond"]:
        raise ValueError(
            "ADM config: class_cond=True is not supported (the label embedding has no counterpart here; "
            "the DiffusionCLIP models are unconditional)"
        )
    if int(mult[0] * cfg["num_channels"]) != int(cfg["num_channels"]):
        raise ValueError(
            f"ADM config: channel_mult[0]={mult[0]} is not supported: diffusers sizes the timestep "
            "embedding by the first block's width, ADM by num_channels (e.g. the 512px default 0.5,1,...)"
        )
    if any(int(m * cfg["num_channels"]) % _GROUPS for m in mult):
        raise ValueError(f"ADM config: every level's channel count must be a multiple of {_GROUPS} (GroupNorm)")


def _layout(config: Mapping) -> dict:
    """Everything both unet_kwargs() and convert() derive from the config."""
    cfg = _full_config(config)
    mult = _channel_mult(cfg)
    _check_supported(cfg, mult)
    channels = [int(m * cfg["num_channels"]) for m in mult]
    rates = _attention_downsample_rates(cfg)
    attn_levels = [level for level in range(len(mult)) if 2**level in rates]
    return {
        "cfg": cfg,
        "channels": channels,
        "attn_levels": attn_levels,
        "head_dim": _attention_head_dim(cfg, channels, attn_levels),
        "resblock_updown": bool(cfg["resblock_updown"]),
        "num_res_blocks": int(cfg["num_res_blocks"]),
    }


def unet_kwargs(config: dict) -> dict:
    """Keyword arguments for ``diffusers.UNet2DModel`` equivalent to ``create_model(**config)``."""
    lay = _layout(config)
    cfg, channels, attn = lay["cfg"], lay["channels"], lay["attn_levels"]
    updown = lay["resblock_updown"]
    plain_down = "ResnetDownsampleBlock2D" if updown else "DownBlock2D"
    plain_up = "ResnetUpsampleBlock2D" if updown else "UpBlock2D"
    levels = range(len(channels))
    return {
        "sample_size": int(cfg["image_size"]),
        "in_channels": 3,
        "out_channels": 6 if cfg["learn_sigma"] else 3,
        "time_embedding_type": "positional",
        "time_embedding_dim": 4 * int(cfg["num_channels"]),
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "down_block_types": tuple("AttnDownBlock2D" if i in attn else plain_down for i in levels),
        "mid_block_type": "UNetMidBlock2D",
        "up_block_types": tuple("AttnUpBlock2D" if i in attn else plain_up for i in reversed(levels)),
        "block_out_channels": tuple(channels),
        "layers_per_block": lay["num_res_blocks"],
        "mid_block_scale_factor": 1,
        "downsample_padding": 1,
        "downsample_type": "resnet" if updown else "conv",
        "upsample_type": "resnet" if updown else "conv",
        "dropout": float(cfg["dropout"]),
        "act_fn": "silu",
        "attention_head_dim": lay["head_dim"],
        "norm_num_groups": _GROUPS,
        "attn_norm_num_groups": _GROUPS,
        "norm_eps": _EPS,
        "resnet_time_scale_shift": "scale_shift" if cfg["use_scale_shift_norm"] else "default",
        "add_attention": True,
    }


# --------------------------------------------------------------------------- key mapping


def _resblock_entries(src: str, dst: str, has_shortcut: bool) -> dict:
    """ADM ResBlock parameter names -> diffusers ResnetBlock2D names (no transform needed)."""
    entries = {}
    for adm_part, hf_part in _RESBLOCK_PARTS.items():
        if adm_part == "skip_connection" and not has_shortcut:
            continue
        for p in ("weight", "bias"):
            entries[f"{src}.{adm_part}.{p}"] = (f"{dst}.{hf_part}.{p}", None)
    return entries


def _attention_entries(src: str, dst: str) -> dict:
    """ADM AttentionBlock parameter names -> diffusers Attention names, with their transforms."""
    entries = {}
    for p in ("weight", "bias"):
        entries[f"{src}.norm.{p}"] = (f"{dst}.group_norm.{p}", None)
        entries[f"{src}.qkv.{p}"] = (f"{dst}.to_{{}}.{p}", "qkv")
        entries[f"{src}.proj_out.{p}"] = (f"{dst}.to_out.0.{p}", "conv1d")
    return entries


def _conv_entries(src: str, dst: str) -> dict:
    """A plain layer whose parameters keep their shapes."""
    return {f"{src}.{p}": (f"{dst}.{p}", None) for p in ("weight", "bias")}


def _down_entries(lay: dict) -> dict:
    """input_blocks.* -> conv_in and down_blocks.*."""
    channels, n = lay["channels"], lay["num_res_blocks"]
    entries = _conv_entries("input_blocks.0.0", "conv_in")
    idx, ch = 1, channels[0]
    for level, out_ch in enumerate(channels):
        block = f"down_blocks.{level}"
        for j in range(n):
            entries |= _resblock_entries(f"input_blocks.{idx}.0", f"{block}.resnets.{j}", ch != out_ch)
            if level in lay["attn_levels"]:
                entries |= _attention_entries(f"input_blocks.{idx}.1", f"{block}.attentions.{j}")
            idx, ch = idx + 1, out_ch
        if level != len(channels) - 1:
            entries |= _resample_entries(lay, f"input_blocks.{idx}.0", f"{block}.downsamplers.0", "op")
            idx += 1
    return entries


def _resample_entries(lay: dict, src: str, dst: str, conv: str) -> dict:
    """A down- or upsampler: ADM's resblock (``resblock_updown``) or its plain convolution, named ``conv``
    under ``src`` ("op" downsampling, "conv" upsampling)."""
    if lay["resblock_updown"]:
        return _resblock_entries(src, dst, False)
    return _conv_entries(f"{src}.{conv}", f"{dst}.conv")


def _skip_channels(channels: list[int], n: int) -> list[int]:
    """Channels of every skip tensor ADM pushes on its stack, in push order."""
    skips = [channels[0]]
    for level, ch in enumerate(channels):
        skips += [ch] * n
        if level != len(channels) - 1:
            skips.append(ch)
    return skips


def _up_entries(lay: dict) -> dict:
    """output_blocks.* -> up_blocks.*."""
    channels, n = lay["channels"], lay["num_res_blocks"]
    skips = _skip_channels(channels, n)
    entries, idx, ch = {}, 0, channels[-1]
    for i, level in enumerate(reversed(range(len(channels)))):
        block, out_ch = f"up_blocks.{i}", channels[level]
        for j in range(n + 1):
            in_ch = ch + skips.pop()
            entries |= _resblock_entries(f"output_blocks.{idx}.0", f"{block}.resnets.{j}", in_ch != out_ch)
            ch, k = out_ch, 1
            if level in lay["attn_levels"]:
                entries |= _attention_entries(f"output_blocks.{idx}.1", f"{block}.attentions.{j}")
                k = 2
            if level and j == n:
                entries |= _resample_entries(lay, f"output_blocks.{idx}.{k}", f"{block}.upsamplers.0", "conv")
            idx += 1
    return entries


def _key_map(lay: dict) -> dict:
    """Every parameter name the config implies -> (diffusers name, transform or None)."""
    entries = _conv_entries("time_embed.0", "time_embedding.linear_1")
    entries |= _conv_entries("time_embed.2", "time_embedding.linear_2")
    entries |= _down_entries(lay)
    entries |= _resblock_entries("middle_block.0", "mid_block.resnets.0", False)
    entries |= _attention_entries("middle_block.1", "mid_block.attentions.0")
    entries |= _resblock_entries("middle_block.2", "mid_block.resnets.1", False)
    entries |= _up_entries(lay)
    entries |= _conv_entries("out.0", "conv_norm_out")
    entries |= _conv_entries("out.2", "conv_out")
    return entries


# --------------------------------------------------------------------------- tensors


def _split_qkv(tensor: torch.Tensor, heads: int, legacy: bool) -> tuple[torch.Tensor, ...]:
    """Split a fused qkv conv weight [3C, C, 1] (or bias [3C]) into q, k, v of [C, C] / [C]."""
    flat = tensor.reshape(tensor.shape[0], -1) if tensor.ndim > 1 else tensor[:, None]
    width = flat.shape[0] // 3
    if legacy:  # rows: head 0 [q k v], head 1 [q k v], ...
        parts = flat.reshape(heads, 3, width // heads, -1).unbind(1)
    else:  # rows: q (all heads), k, v
        parts = flat.reshape(3, width, -1).unbind(0)
    shape = (width, flat.shape[1]) if tensor.ndim > 1 else (width,)
    return tuple(p.reshape(shape).clone() for p in parts)


def _check_attention_shapes(name: str, tensor: torch.Tensor, head_dim: int) -> int:
    """Validate a qkv tensor and return its number of heads."""
    fused_weight_shape = (tensor.shape[0] // 3, 1)
    if tensor.shape[0] % (3 * head_dim) or (tensor.ndim > 1 and tuple(tensor.shape[1:]) != fused_weight_shape):
        raise ValueError(
            f"ADM state dict: {name} has shape {tuple(tensor.shape)}, not a fused qkv for head width {head_dim}"
        )
    return tensor.shape[0] // (3 * head_dim)


def _convert_tensor(name: str, tensor: torch.Tensor, target: str, transform, lay: dict) -> dict:
    """The diffusers entries for one ADM tensor."""
    if transform is None:
        return {target: tensor}
    if transform == "conv1d":  # 1x1 Conv1d [C_out, C_in, 1] -> Linear [C_out, C_in]
        return {target: tensor[..., 0] if tensor.ndim == 3 else tensor}
    heads = _check_attention_shapes(name, tensor, lay["head_dim"])
    legacy = not lay["cfg"]["use_new_attention_order"]
    q, k, v = _split_qkv(tensor, heads, legacy)
    return {target.format("q"): q, target.format("k"): k, target.format("v"): v}


def _check_against_model(converted: dict, kwargs: dict) -> None:
    """Raise ValueError unless the converted tensors fit UNet2DModel(**kwargs) exactly."""
    expected = expected_shapes(kwargs)
    missing, extra = set(expected) - set(converted), set(converted) - set(expected)
    if missing or extra:
        raise ValueError(
            f"ADM mapping bug: UNet2DModel keys not produced: {describe_keys(missing)}; unexpected: {describe_keys(extra)}"
        )
    wrong = [f"{k} {tuple(v.shape)} vs {expected[k]}" for k, v in converted.items() if tuple(v.shape) != expected[k]]
    if wrong:
        raise ValueError(
            f"ADM state dict does not fit the config (converted vs expected shape): {describe_keys(wrong, 3)}"
        )


def convert(state_dict, config) -> dict:
    """Rename/reshape an ADM ``UNetModel`` state dict for ``UNet2DModel(**unet_kwargs(config))``.

    Raises ValueError naming the keys when the state dict has keys the config does not imply,
    lacks keys it does imply, or has tensors of the wrong shape.
    """
    lay = _layout(config)
    source = strip_prefix(state_dict)
    key_map = _key_map(lay)
    unknown = set(source) - set(key_map)
    if unknown:
        raise ValueError(f"ADM state dict has keys this mapping does not know: {describe_keys(unknown)}")
    missing = set(key_map) - set(source)
    if missing:
        raise ValueError(f"ADM state dict lacks keys the config implies: {describe_keys(missing)}")
    converted = {}
    for name, tensor in source.items():
        target, transform = key_map[name]
        converted |= _convert_tensor(name, tensor, target, transform, lay)
    _check_against_model(converted, unet_kwargs(config))
    return converted
