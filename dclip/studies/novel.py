"""Notebook 05's Fig. 7: novel applications -- (a) unseen -> unseen and (b) stroke -> unseen translation
(Sec. 3.2), (c) several attributes at once by mixing the noise of fine-tuned models (eq. 14)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..method import metrics
from ..method.attributes import Attribute, attribute
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
    """Fig. 7c: one sampling with the noise of several fine-tuned models (eq. 14), beside each alone, on the
    test images that lack every mixed attribute (:meth:`~dclip.notebook.worlds.PhotoWorld.edit_images`).

    All of them start from one inversion of those images (:meth:`Context.latent`).
    """
    from ..method.edit import edit_multi

    attrs = [attribute(name) for name in names]
    models = [ctx.finetune(a) for a in attrs]
    t0 = int(t0 or max(a.t0 for a in attrs))
    faces = ctx.world.edit_images(tuple(names))
    study.images["c/original"] = faces.cpu()
    x_lat = ctx.latent(faces, t0, "celeba_hq").to(faces.device)
    mixed = edit_multi(ctx.unet("celeba_hq"), models, None, t0, gammas or {0: [1.0] * len(models)}, x_lat=x_lat,
                       n_gen=ctx.profile.n_gen, fast=ctx.profile.fast)
    study.images["c/mixed"] = mixed.cpu()
    for name, a, model in zip(names, attrs, models):
        single = ctx.edit(model, faces, t0, "celeba_hq")
        study.images[f"c/{name}"] = single.cpu()
        study.rows.append({"application": "single attribute", "prompt": name,
                           "s_dir": _s_dir(ctx, faces, single, a), **judged(ctx, faces, single, name)})
        study.rows.append({"application": "multi-attribute mix", "prompt": name,
                           "s_dir": _s_dir(ctx, faces, mixed, a), **judged(ctx, faces, mixed, name)})
    if ctx.profile.is_toy:
        study.rows.extend(_both_rows(ctx, faces, study, names))


def _both_rows(ctx, faces: torch.Tensor, study: Study, names: Sequence[str]) -> list[dict]:
    """Toy profile: how often the judge sees every mixed attribute at once (on a well-formed face), for each
    single model and for the mix, with 95 % bootstrap intervals over the faces (which lack them all)."""
    from ..toy.judging import judge_target
    from .common import _interval

    targets = [judge_target(n) for n in names]

    def has_all(x) -> list[float]:
        return [float(v["well_formed"] and all(v[h] == val for h, val in targets)) for v in ctx.judge.predict(x.cpu())]

    def row(prompt: str, x: torch.Tensor) -> dict:
        values = has_all(x)
        return {"application": "all attributes at once", "prompt": prompt, "s_dir": None,
                "hit": sum(values) / len(values), "hit_ci": _interval(values),
                "of": len(values)}

    label = " + ".join(names)
    return [*(row(f"{n} alone", study.images[f"c/{n}"]) for n in names), row(f"mix {label}", study.images["c/mixed"])]


def novel_applications(ctx, portraits: torch.Tensor, *, unseen: str = "pixar", stroke_target: str = "gogh",
                       multi: Sequence[str] = ("curly_hair", "makeup"), gammas: dict | None = None,
                       multi_t0: int | None = None, t0_project: int = 500, n_segments: int = 24,
                       n_show: int = 8) -> Study:
    """Fig. 7: (a) unseen → unseen, (b) stroke → unseen, (c) several attributes by mixing noise (eq. 14).

    (a) and (b) pull the input into the model's domain by K rounds of forward noising and denoising
    (Sec. 3.2) to ``t0_project`` and then edit it; (b) starts from a stroke painting of the portrait
    with ``n_segments`` colour blocks. (c) mixes the fine-tuned models of ``multi`` with the γ(t)
    schedule ``gammas`` (default: equal weights) at ``multi_t0`` (default: the largest of their
    t0s) on the test images that lack every mixed attribute; its figure, ``n_show`` faces under each model
    and the mix, is ``panels["mix"]``. Rows: application, prompt, S_dir measured
    from the input of each application (and the judged columns at the toy profile).
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
                  [first("portrait"), first("b/stroke"), first("b/projected"), first("b/edited")]]
    study.captions = [["portrait", "projected", unseen], ["portrait", "stroke", "projected", stroke_target]]
    study.row_labels = ["(a) unseen -> unseen", "(b) stroke -> unseen"]
    study.title = "Fig. 7 (a, b): unseen-domain and stroke inputs"
    study.panels["mix"] = _mix_figure(ctx, study, multi, n_show)
    return study


def _mix_figure(ctx, study: Study, names: Sequence[str], n_show: int) -> Study:
    """Fig. 7c as its own figure: ``n_show`` faces lacking every mixed attribute as columns; rows original |
    each model alone | the mix, with the judge's reading of every mixed attribute under each face (toy)."""
    from .judged_edits import _readings

    keys = ["c/original", *(f"c/{n}" for n in names), "c/mixed"]
    n = min(n_show, len(study.images["c/original"]))
    figure = Study(row_labels=["original", *(f"{n} alone" for n in names), " + ".join(names) + " (eq. 14)"])
    figure.grid = [list(study.images[k][:n]) for k in keys]
    readings = [[_readings(ctx, name, study.images[k][:n]) for name in names] for k in keys]
    figure.notes = [[" / ".join(parts) for parts in zip(*per_key)] for per_key in readings]
    figure.title = f"Fig. 7c: {' + '.join(names)} mixed (eq. 14), beside each model alone; the judge's reading under each face"
    return figure
