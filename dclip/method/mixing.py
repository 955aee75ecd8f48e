"""Mixing the noise of several models: the degree of change and multi-attribute edits (eq. 14).

Both mixes are models in the sense of :mod:`dclip.method.ddim`: called as ``mix(x, t)`` they return ε, so
:func:`dclip.invert` and :func:`dclip.generate` take them wherever they take a UNet.

:func:`noise_mix` is the one entry point that builds the model to generate with from a degree of change
r and γ weights (a constant list or a threshold schedule): :func:`dclip.method.edit.edit`,
:func:`dclip.method.edit.edit_multi`, the command line and the live editor all call it.

The samplers call :meth:`eps_at` with the integer time instead, so no device tensor is read back to
the host at every step (``mix(x, t)`` has to read ``t``, which synchronises with the GPU).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .ddim import predict_eps

__all__ = ["RatioMix", "ThresholdMix", "noise_mix", "change_weights", "parse_gammas"]


def _time(t: torch.Tensor) -> int:
    """The (uniform) integer time held in ``t`` (reading it synchronises with a GPU)."""
    return int(t.flatten()[0])


class RatioMix:
    """Degree of change: ε = r·ε_finetuned + (1 − r)·ε_original (r = 1 is the fine-tuned model alone).

    A model whose weight is 0 is not evaluated, so r = 0 costs exactly one original-model call.
    """

    def __init__(self, original, finetuned, ratio: float):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio (degree of change) must lie in [0, 1]; got {ratio}.")
        self.original, self.finetuned, self.ratio = original, finetuned, float(ratio)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.eps_at(x, _time(t))

    def eps_at(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """ε at the integer time ``t`` (what the samplers call: no host-device synchronisation)."""
        eps = 0.0
        if self.ratio != 0.0:
            eps = eps + self.ratio * predict_eps(self.finetuned, x, t)
        if self.ratio != 1.0:
            eps = eps + (1.0 - self.ratio) * predict_eps(self.original, x, t)
        return eps

    def submodels(self) -> list:
        """The models this mix evaluates."""
        return [self.original, self.finetuned]

    def cache_token(self) -> tuple:
        """What this mix computes besides the weights (keys captured CUDA graphs)."""
        return ("ratio", self.ratio, id(self.original), id(self.finetuned))

    def map_models(self, fn) -> "RatioMix":
        """The same mix over ``fn(model)`` of each model (used to swap in prepared/compiled runners)."""
        return RatioMix(fn(self.original), fn(self.finetuned), self.ratio)


class ThresholdMix:
    """Multi-attribute change, eq. 14: ε = Σ_i γ_i(t) ε_i with Σ_i γ_i(t) = 1.

    ``schedule`` maps thresholds to weight lists, e.g. ``{300: [1, 0], 0: [0.3, 0.7]}``: at a time
    t the list of the largest threshold ≤ t applies (here: t ≥ 300 the first model alone, below it
    0.3 / 0.7). Weights are normalised to sum to 1; models with weight 0 are not evaluated.
    """

    def __init__(self, models: Sequence, schedule: Mapping[int, Sequence[float]]):
        if not models:
            raise ValueError("ThresholdMix needs at least one model.")
        if not schedule:
            raise ValueError("the γ(t) schedule is empty; give e.g. {0: [0.5, 0.5]}.")
        self.models = list(models)
        self.schedule = {int(k): self._normalised(k, v) for k, v in sorted(schedule.items(), reverse=True)}
        if min(self.schedule) > 0:
            raise ValueError(f"the γ(t) schedule must cover t = 0: its lowest threshold is {min(self.schedule)}; "
                             "add an entry for threshold 0.")

    def _normalised(self, threshold, weights: Sequence[float]) -> list[float]:
        if len(weights) != len(self.models):
            raise ValueError(f"γ(t) at threshold {threshold} has {len(weights)} weights for "
                             f"{len(self.models)} models.")
        total = float(sum(weights))
        if total <= 0 or min(weights) < 0:
            raise ValueError(f"γ(t) at threshold {threshold} must be non-negative with a positive sum; got {list(weights)}.")
        return [float(w) / total for w in weights]

    def weights(self, t: int) -> list[float]:
        """γ(t): the normalised weights in force at time ``t`` (t = −1 uses the lowest threshold's)."""
        for threshold, gammas in self.schedule.items():
            if t >= threshold:
                return gammas
        return self.schedule[min(self.schedule)]

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.eps_at(x, _time(t))

    def eps_at(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """ε at the integer time ``t`` (what the samplers call: no host-device synchronisation)."""
        eps = 0.0
        for gamma, model in zip(self.weights(t), self.models):
            if gamma != 0.0:
                eps = eps + gamma * predict_eps(model, x, t)
        return eps

    def submodels(self) -> list:
        """The models this mix evaluates."""
        return list(self.models)

    def cache_token(self) -> tuple:
        """What this mix computes besides the weights (keys captured CUDA graphs)."""
        return ("gamma", tuple((k, tuple(v)) for k, v in self.schedule.items()), tuple(id(m) for m in self.models))

    def map_models(self, fn) -> "ThresholdMix":
        """The same mix over ``fn(model)`` of each model (used to swap in prepared/compiled runners)."""
        mix = object.__new__(ThresholdMix)
        mix.models, mix.schedule = [fn(m) for m in self.models], dict(self.schedule)
        return mix


def change_weights(ratio: float, gammas: Sequence[float]) -> list[float]:
    """[w_original, w_1, ..., w_n] of ε = (1 − r)·ε_original + r·Σ_i γ_i ε_i, with γ normalised to sum 1.

    r = 0, or no model weighted (all γ = 0, or none), gives the original model alone: the reconstruction.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"the degree of change must lie in [0, 1]; got {ratio}.")
    if any(g < 0 for g in gammas):
        raise ValueError(f"γ weights must be non-negative; got {list(gammas)}.")
    total = float(sum(gammas))
    if total == 0.0 or ratio == 0.0:
        return [1.0] + [0.0] * len(gammas)
    return [1.0 - ratio] + [ratio * g / total for g in gammas]


def noise_mix(original, finetuned: Sequence = (), *, ratio: float = 1.0,
              gammas: Mapping[int, Sequence[float]] | Sequence[float] | None = None):
    """The model to generate with for a degree of change r and γ weights (Sec. 3.2 and eq. 14).

    ε = (1 − r)·ε_original + r·Σ_i γ_i(t)·ε_i. ``gammas`` is a threshold schedule
    (``{300: [1, 0], 0: [0.3, 0.7]}``, see :class:`ThresholdMix`), a constant list, or ``None`` for one
    fine-tuned model. Returns ``original`` itself when nothing is mixed in (r = 0, all γ = 0, no
    model), the fine-tuned model itself for r = 1 and one model, a :class:`RatioMix` for r < 1 and
    one model, else a :class:`ThresholdMix`.
    """
    finetuned = list(finetuned)
    if gammas is None:
        if len(finetuned) > 1:
            raise ValueError(f"{len(finetuned)} fine-tuned models need γ weights, "
                             "e.g. {300: [1, 0], 0: [0.3, 0.7]}.")
        gammas = [1.0] * len(finetuned)
    schedule = {int(k): list(v) for k, v in gammas.items()} if isinstance(gammas, Mapping) else {0: list(gammas)}
    for threshold, g in schedule.items():
        if len(g) != len(finetuned):
            raise ValueError(f"γ(t) at threshold {threshold} has {len(g)} weights for {len(finetuned)} models.")
    weights = {t: change_weights(ratio, g) for t, g in schedule.items()}
    if all(w[0] == 1.0 for w in weights.values()):
        return original
    if len(finetuned) == 1 and len(schedule) == 1:
        return finetuned[0] if ratio == 1.0 else RatioMix(original, finetuned[0], ratio)
    if ratio == 1.0:
        return ThresholdMix(finetuned, schedule)
    return ThresholdMix([original, *finetuned], weights)


def parse_gammas(text: str) -> dict[int, list[float]]:
    """A γ(t) schedule from text, ``"300:1,0;0:0.3,0.7"`` -> ``{300: [1.0, 0.0], 0: [0.3, 0.7]}``."""
    try:
        return {int(k): [float(w) for w in v.split(",")] for k, v in (part.split(":") for part in text.split(";"))}
    except ValueError:
        raise ValueError(f"γ schedule '{text}' is not of the form 'THRESHOLD:W1,W2;THRESHOLD:W1,W2'.") from None
