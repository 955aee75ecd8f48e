"""The ermongroup/ddim ``Model`` layout (DiffusionCLIP's ``DDPM``) as a diffusers ``UNet2DModel``.

This is the layout of the paper's ``celeba_hq.ckpt``, ``bedroom.ckpt``,
``church_outdoor.ckpt`` and of every DiffusionCLIP fine-tuned checkpoint.
The two networks compute the same function once these settings are used:

* time embedding: sin-then-cos halves with frequencies ``10000**(-i/(half-1))``
  -> ``flip_sin_to_cos=False, freq_shift=1``; ``temb.dense.{0,1}`` are
  ``time_embedding.linear_{1,2}``.
* GroupNorm with 32 groups and eps 1e-6 everywhere, SiLU activations.
* level ``i`` (resolution ``image_size / 2**i``) has ``num_res_blocks`` resnets
  going down and ``num_res_blocks + 1`` going up; it uses attention blocks
  (``AttnDownBlock2D`` / ``AttnUpBlock2D``) when its resolution is listed in
  ``attn_resolutions``.  ``up.{i}`` is diffusers' ``up_blocks.{n-1-i}``.
* attention is single-head with 1x1-conv q/k/v/proj; diffusers' ``Attention``
  uses linear layers, so those weights lose their trailing 1x1 dimensions.
  ``attention_head_dim=None`` makes diffusers use one head of full width.
* the downsampling conv pads (0, 1, 0, 1) and then convolves with stride 2 and
  no padding; diffusers' ``Downsample2D`` does exactly that when
  ``downsample_padding=0``.
* ``nin_shortcut`` (1x1 conv) is diffusers' ``conv_shortcut`` (also 1x1).

Not expressible (``ValueError``): ``resamp_with_conv: false`` (diffusers' blocks
always resample with a conv) and ``ch_mult[0] != 1`` (diffusers' ``conv_in`` and
time projection use ``block_out_channels[0]`` channels, ddim's use ``ch``).
``type: bayesian`` is accepted: it only adds a learned per-timestep ``logvar``
vector that the network's forward pass never reads, and ``convert`` drops it.
"""

import re

from .common import describe_keys, expected_shapes, strip_prefix

_REQUIRED = ("in_channels", "out_ch", "ch", "ch_mult", "num_res_blocks",
             "attn_resolutions", "resamp_with_conv", "image_size")

# ddim sub-module name -> diffusers sub-module name
_RESNET_PARTS = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj",
                 "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_ATTN_PARTS = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v",
               "proj_out": "to_out.0"}
_ATTN_LINEARS = ("to_q", "to_k", "to_v", "to_out.0")

_LEVEL_KEY = re.compile(r"(down|up)\.(\d+)\.(block|attn)\.(\d+)\.(\w+)\.(weight|bias)")
_RESAMPLE_KEY = re.compile(r"(down|up)\.(\d+)\.(downsample|upsample)\.conv\.(weight|bias)")
_MID_KEY = re.compile(r"mid\.(block_1|block_2|attn_1)\.(\w+)\.(weight|bias)")
_TOP_LEVEL = {"temb.dense.0": "time_embedding.linear_1", "temb.dense.1": "time_embedding.linear_2",
              "conv_in": "conv_in", "conv_out": "conv_out", "norm_out": "conv_norm_out"}


def matches(state_dict):
    """True when the keys look like an ermongroup/ddim ``Model`` checkpoint."""
    keys = strip_prefix(state_dict).keys()
    return ("temb.dense.0.weight" in keys and "conv_in.weight" in keys
            and any(key.startswith(("down.", "mid.", "up.")) for key in keys))


def _check_config(config):
    """Raise ValueError for configs that are incomplete or that UNet2DModel cannot express."""
    missing = [name for name in _REQUIRED if name not in config]
    if missing:
        raise ValueError(f"ddim config lacks required keys {missing}")
    if config.get("type", "simple") not in ("simple", "bayesian"):
        raise ValueError(f"ddim config type {config['type']!r} is unknown (expected 'simple' or 'bayesian')")
    if not config["resamp_with_conv"]:
        raise ValueError("resamp_with_conv: false is not supported: diffusers' UNet2DModel blocks "
                         "always down/upsample with a convolution")
    if config["ch_mult"][0] != 1:
        raise ValueError(f"ch_mult must start with 1 (got {list(config['ch_mult'])}): diffusers' conv_in "
                         "and time projection width is block_out_channels[0], ddim's is ch")
    widths = [config["ch"] * mult for mult in config["ch_mult"]]
    if any(width % 32 for width in widths):
        raise ValueError(f"channel widths {widths} must be multiples of 32 (GroupNorm with 32 groups)")


def unet_kwargs(config):
    """Keyword arguments for ``diffusers.UNet2DModel`` equivalent to a ddim ``model:`` config (+ image_size)."""
    _check_config(config)
    levels = len(config["ch_mult"])
    with_attn = [config["image_size"] // 2 ** i in config["attn_resolutions"] for i in range(levels)]
    down_types = ["AttnDownBlock2D" if attn else "DownBlock2D" for attn in with_attn]
    up_types = ["AttnUpBlock2D" if attn else "UpBlock2D" for attn in reversed(with_attn)]
    return dict(
        sample_size=config["image_size"],
        in_channels=config["in_channels"],
        out_channels=config["out_ch"],
        block_out_channels=tuple(config["ch"] * mult for mult in config["ch_mult"]),
        layers_per_block=config["num_res_blocks"],
        down_block_types=tuple(down_types),
        up_block_types=tuple(up_types),
        time_embedding_type="positional",
        flip_sin_to_cos=False,
        freq_shift=1,
        downsample_padding=0,
        downsample_type="conv",
        upsample_type="conv",
        mid_block_scale_factor=1,
        dropout=float(config.get("dropout", 0.0)),
        act_fn="silu",
        attention_head_dim=None,
        norm_num_groups=32,
        norm_eps=1e-6,
        resnet_time_scale_shift="default",
        add_attention=True,
    )


def _rename(key, levels):
    """diffusers name of a ddim key, or None if the key is not part of the ddim layout."""
    head, _, param = key.rpartition(".")
    if head in _TOP_LEVEL and param in ("weight", "bias"):
        return f"{_TOP_LEVEL[head]}.{param}"
    found = _LEVEL_KEY.fullmatch(key)
    if found:
        side, level, kind, index, part, param = found.groups()
        parts = _RESNET_PARTS if kind == "block" else _ATTN_PARTS
        if part not in parts:
            return None
        block = int(level) if side == "down" else levels - 1 - int(level)
        group = "resnets" if kind == "block" else "attentions"
        return f"{side}_blocks.{block}.{group}.{index}.{parts[part]}.{param}"
    found = _RESAMPLE_KEY.fullmatch(key)
    if found:
        side, level, _, param = found.groups()
        block = int(level) if side == "down" else levels - 1 - int(level)
        return f"{side}_blocks.{block}.{side}samplers.0.conv.{param}"
    found = _MID_KEY.fullmatch(key)
    if found:
        module, part, param = found.groups()
        if module == "attn_1":
            return f"mid_block.attentions.0.{_ATTN_PARTS[part]}.{param}" if part in _ATTN_PARTS else None
        index = 0 if module == "block_1" else 1
        return f"mid_block.resnets.{index}.{_RESNET_PARTS[part]}.{param}" if part in _RESNET_PARTS else None
    return None


_OURS_KEY = re.compile(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(\w+(?:\.0)?)\.(weight|bias)")
_OURS_RESAMPLE_KEY = re.compile(r"(down|up)_blocks\.(\d+)\.\w+samplers\.0\.conv\.(weight|bias)")
_OURS_MID_KEY = re.compile(r"mid_block\.(resnets|attentions)\.(\d+)\.(\w+(?:\.0)?)\.(weight|bias)")


def _original_name(name, levels):
    """ddim name of a diffusers parameter name (the inverse of ``_rename``), for error messages."""
    head, _, param = name.rpartition(".")
    for theirs, ours in _TOP_LEVEL.items():
        if head == ours:
            return f"{theirs}.{param}"
    resnet_parts = {ours: theirs for theirs, ours in _RESNET_PARTS.items()}
    attn_parts = {ours: theirs for theirs, ours in _ATTN_PARTS.items()}
    found = _OURS_KEY.fullmatch(name)
    if found:
        side, block, group, index, part, param = found.groups()
        level = int(block) if side == "down" else levels - 1 - int(block)
        kind, parts = ("block", resnet_parts) if group == "resnets" else ("attn", attn_parts)
        return f"{side}.{level}.{kind}.{index}.{parts.get(part, part)}.{param}"
    found = _OURS_RESAMPLE_KEY.fullmatch(name)
    if found:
        side, block, param = found.groups()
        level = int(block) if side == "down" else levels - 1 - int(block)
        return f"{side}.{level}.{side}sample.conv.{param}"
    found = _OURS_MID_KEY.fullmatch(name)
    if found:
        group, index, part, param = found.groups()
        if group == "attentions":
            return f"mid.attn_1.{attn_parts.get(part, part)}.{param}"
        return f"mid.block_{int(index) + 1}.{resnet_parts.get(part, part)}.{param}"
    return name


def _fail(what, items, hint=""):
    raise ValueError(f"ddim checkpoint: {what}: {describe_keys(items)}{hint}")


def convert(state_dict, config):
    """Rename and reshape a ddim ``Model`` state dict into ``UNet2DModel(**unet_kwargs(config))`` keys.

    Every input key must map onto a parameter of that model with the right
    shape, and every parameter must be filled; otherwise ValueError names the
    offending keys.  Tensors are not copied (1x1 attention weights are views).
    """
    state_dict = strip_prefix(state_dict)
    expected = expected_shapes(unet_kwargs(config))
    levels = len(config["ch_mult"])
    converted, source, unknown = {}, {}, []
    for key, tensor in state_dict.items():
        if key == "logvar" and config.get("type") == "bayesian":
            continue  # learned variance of the 'bayesian' type; not used by the network
        name = _rename(key, levels)
        if name is None or name not in expected:
            unknown.append(key)
            continue
        if name.rsplit(".", 1)[0].endswith(_ATTN_LINEARS) and tensor.dim() == 4 and tensor.shape[2:] == (1, 1):
            tensor = tensor.reshape(tensor.shape[:2])
        converted[name], source[name] = tensor, key
    if unknown:
        hint = " (a 'logvar' key needs type: bayesian)" if "logvar" in unknown else ""
        _fail("keys not in the ddim layout for this config", unknown,
              hint + "; check that the config matches the checkpoint")
    missing = [_original_name(name, levels) for name in expected if name not in converted]
    if missing:
        _fail("keys the config needs but the checkpoint lacks", missing,
              "; check num_res_blocks, ch_mult and attn_resolutions")
    wrong = [f"{source[name]} has {tuple(tensor.shape)}, config needs {expected[name]}"
             for name, tensor in converted.items() if tuple(tensor.shape) != expected[name]]
    if wrong:
        _fail("shapes do not match the config", wrong, "; check ch, ch_mult, in_channels and out_ch")
    return converted
