"""Notebook 05's Fig. 7: novel applications -- (a) unseen -> unseen and (b) stroke -> unseen translation
(Sec. 3.2), (c) several attributes at once by mixing the noise of fine-tuned models (eq. 14)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..method import metrics
from ..method.attributes import Attribute, attribute
from ..runtime.fast import EDITING
from .common import Study, judged, mean

__all__ = ["novel_applications"]


def _s_dir(ctx, originals, edited, attr: Attribute) -> float:
    return mean(metrics.directional_similarity(ctx.clip, originals, edited, attr.source, attr.target))


def _translate(ctx, study: Study, key: str, label: str, name: str, inputs: torch.Tensor, seed: int,
               portraits: torch.Tensor, **kwargs) -> None:
    """Fig. 7a/b: project ``inputs`` into the face domain (K noising + denoising rounds), then edit.
    The judge (toy profile) compares the result with ``portraits``, the faces the inputs were made from."""
    from ..method.edit import unseen_to_unseen

    p, target = ctx.profile, attribute(name)
    projected, out = unseen_to_unseen(ctx.unet("celeba_hq"), ctx.finetune(target), inputs, t0=target.t0,
                                      repeats=p.project_repeats, project_steps=p.project_steps, n_inv=p.n_inv,
                                      n_gen=p.n_gen, generator=ctx.world.generator(seed), **kwargs)
    study.images.update({f"{key}/projected": projected.cpu(), f"{key}/edited": out.cpu()})
    study.rows.append({"application": label, "prompt": name, "s_dir": _s_dir(ctx, inputs, out, target),
                       **judged(ctx, portraits, out, name)})


def _mix(ctx, study: Study, portraits: torch.Tensor, names: Sequence[str], gammas: dict | None,
         t0: int | None) -> None:
    """Fig. 7c: one sampling with the noise of several fine-tuned models (eq. 14), beside each alone.

    All of them start from one inversion of the portraits (:meth:`Context.latent`).
    """
    from ..method.edit import edit_multi

    attrs = [attribute(name) for name in names]
    models = [ctx.finetune(a) for a in attrs]
    t0 = int(t0 or max(a.t0 for a in attrs))
    x_lat = ctx.latent(portraits, t0, "celeba_hq").to(portraits.device)
    mixed = edit_multi(ctx.unet("celeba_hq"), models, None, t0, gammas or {0: [1.0] * len(models)}, x_lat=x_lat,
                       n_gen=ctx.profile.n_gen, fast=EDITING)
    study.images["c/mixed"] = mixed.cpu()
    for name, a, model in zip(names, attrs, models):
        single = ctx.edit(model, portraits, t0, "celeba_hq")
        study.images[f"c/{name}"] = single.cpu()
        study.rows.append({"application": "single attribute", "prompt": name,
                           "s_dir": _s_dir(ctx, portraits, single, a), **judged(ctx, portraits, single, name)})
        study.rows.append({"application": "multi-attribute mix", "prompt": name,
                           "s_dir": _s_dir(ctx, portraits, mixed, a), **judged(ctx, portraits, mixed, name)})
    if ctx.profile.is_toy:
        study.rows.extend(_both_rows(ctx, portraits, study, names))


def _both_rows(ctx, portraits: torch.Tensor, study: Study, names: Sequence[str]) -> list[dict]:
    """Toy profile: how often the judge sees all mixed attributes at once, for each single model and the mix,
    among the portraits that lacked at least one of them."""
    from ..toy.judging import judge_target

    targets = [judge_target(n) for n in names]

    def has_all(x) -> list[bool]:
        return [all(v[h] == val for h, val in targets) for v in ctx.judge.predict(x.cpu())]

    lacking = [not had for had in has_all(portraits)]

    def rate(x):
        hits = [hit for hit, counted in zip(has_all(x), lacking) if counted]
        return sum(hits) / len(hits) if hits else None

    label, of = " + ".join(names), sum(lacking)
    return [*({"application": "all attributes at once", "prompt": f"{n} alone", "s_dir": None,
               "hit": rate(study.images[f"c/{n}"]), "of": of, "kept": None} for n in names),
            {"application": "all attributes at once", "prompt": f"mix {label}", "s_dir": None,
             "hit": rate(study.images["c/mixed"]), "of": of, "kept": None}]


def novel_applications(ctx, portraits: torch.Tensor, *, unseen: str = "pixar", stroke_target: str = "gogh",
                       multi: Sequence[str] = ("curly_hair", "makeup"), gammas: dict | None = None,
                       multi_t0: int | None = None, t0_project: int = 500, n_segments: int = 24) -> Study:
    """Fig. 7: (a) unseen → unseen, (b) stroke → unseen, (c) several attributes by mixing noise (eq. 14).

    (a) and (b) pull the input into the model's domain by K rounds of forward noising and denoising
    (Sec. 3.2) to ``t0_project`` and then edit it; (b) starts from a stroke painting of the portrait
    with ``n_segments`` colour blocks. (c) mixes the fine-tuned models of ``multi`` with the γ(t)
    schedule ``gammas`` (default: equal weights) at ``multi_t0`` (default: the largest of their
    t0s). Rows: application, prompt, S_dir measured from the input of each application.
    """
    from ..data.images import stroke_paint

    study = Study(images={"portrait": portraits.cpu()})
    unseen_inputs = ctx.world.unseen_images(portraits)
    study.images["a/input"] = unseen_inputs.cpu()
    _translate(ctx, study, "a", "unseen -> unseen", unseen, unseen_inputs, 1, portraits, t0_project=t0_project)
    study.images["b/stroke"] = stroke_paint(portraits, n_segments=n_segments).cpu()
    _translate(ctx, study, "b", "stroke -> unseen", stroke_target, study.images["b/stroke"].to(portraits.device), 2,
               portraits, t0_project=t0_project)
    _mix(ctx, study, portraits, multi, gammas, multi_t0)
    first = lambda key: study.images[key][0]  # noqa: E731
    study.grid = [[first("a/input"), first("a/projected"), first("a/edited")],
                  [first("portrait"), first("b/stroke"), first("b/projected"), first("b/edited")],
                  [first("portrait")] + [first(f"c/{name}") for name in multi] + [first("c/mixed")]]
    study.captions = [["portrait", "projected", unseen], ["portrait", "stroke", "projected", stroke_target],
                      ["portrait", *multi, " + ".join(multi)]]
    study.row_labels = ["(a) unseen -> unseen", "(b) stroke -> unseen", "(c) multi-attribute"]
    study.title = "Fig. 7: novel applications"
    return study
