"""What a notebook session has already computed, kept under one keyed helper.

:meth:`Memo.get` returns the value kept under a key, computing it the first time; the keys are tuples that
name everything the value depends on (a kind first: ``("images", ...)``, ``("latents", ...)``, ...).
:meth:`Memo.fingerprint` hashes a model's weights once for as long as the model object lives.
"""
from __future__ import annotations

import weakref
from typing import Callable, TypeVar

import torch

__all__ = ["Memo"]

T = TypeVar("T")


class Memo:
    """One session's results, by key."""

    def __init__(self):
        self._values: dict[tuple, object] = {}
        self._fingerprints: dict[int, tuple[weakref.ref, str]] = {}

    def get(self, key: tuple, compute: Callable[[], T]) -> T:
        """The value kept under ``key``; ``compute()`` gives it the first time."""
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]

    def peek(self, key: tuple):
        """The value kept under ``key``, or ``None`` when nothing is."""
        return self._values.get(key)

    def fingerprint(self, model: torch.nn.Module) -> str:
        """:func:`dclip.method.latents.fingerprint` of ``model``'s weights, hashed once per model object.

        Meant for models that are not changed in place (the base UNets): the digest is remembered
        for as long as the object lives.
        """
        from ..method.latents import fingerprint

        entry = self._fingerprints.get(id(model))
        if entry is None or entry[0]() is not model:
            entry = (weakref.ref(model), fingerprint(model.state_dict()))
            self._fingerprints[id(model)] = entry
        return entry[1]
