"""What every layout converter needs: DataParallel's key prefix, the target UNet's shapes, key lists in errors."""
from __future__ import annotations

from typing import Iterable, Mapping

import torch

__all__ = ["strip_prefix", "expected_shapes", "describe_keys"]

_PREFIX = "module."


def strip_prefix(state_dict: Mapping) -> dict:
    """``state_dict`` without a leading ``module.`` when every key has one (DataParallel saves)."""
    keys = list(state_dict)
    if keys and all(isinstance(k, str) and k.startswith(_PREFIX) for k in keys):
        return {k[len(_PREFIX):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def expected_shapes(unet_kwargs: dict) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of ``UNet2DModel(**unet_kwargs)``, built on the meta device (no memory, no init)."""
    from diffusers import UNet2DModel

    with torch.device("meta"):
        model = UNet2DModel(**unet_kwargs)
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


def describe_keys(keys: Iterable[str], limit: int = 5) -> str:
    """The first ``limit`` keys for an error message (a set sorted first), and how many there are in all."""
    keys = sorted(keys) if isinstance(keys, (set, frozenset)) else [str(k) for k in keys]
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")
