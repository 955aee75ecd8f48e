"""Notebook 02: Fig. 5 and Table 3 (S_dir, ID) -- DiffusionCLIP beside StyleCLIP and StyleGAN-NADA
(with their GAN inversions, e4e and W+ optimisation, and Table 1's rows of them and of DiffusionCLIP's
reconstruction), plus the registry of further editing methods (:data:`BASELINES`)."""
from __future__ import annotations

import importlib
from typing import Callable, Sequence

import torch

from ..method import metrics
from ..method.attributes import Attribute, attribute
from .common import GAN_DOMAIN, EditSet, Study, _one_domain, judged, mean
from .paper_numbers import TABLE3_PROMPTS, paper_manipulation
from .reconstruction import diffusion_reconstruction_rows, diffusion_reconstructions, gan_inversion_rows

__all__ = ["BASELINES", "GAN_METHODS", "GAN_INVERSION", "DIFFUSION_RECONSTRUCTION", "register_baseline",
           "run_baseline", "gan_outputs", "gan_edit_sets", "diffusionclip_edits", "edit_rows", "summary_rows",
           "manipulation_study", "TOY_IDENTITY"]


#: The built-in GAN baselines (the keys of :func:`dclip.baselines.comparison.run_gan_baselines`' result):
#: StyleCLIP from e4e (the paper's), StyleCLIP from the W+ projection, StyleGAN-NADA from the projection.
GAN_METHODS = ("StyleCLIP", "StyleCLIP (global directions)", "StyleCLIP (optimisation)", "StyleGAN-NADA")

#: Image keys / figure columns besides the methods' edits (a GAN inversion's column is
#: ``f"{GAN_INVERSION} ({name})"`` for each inversion name, e.g. "GAN inversion (e4e)").
GAN_INVERSION = "GAN inversion"
DIFFUSION_RECONSTRUCTION = "DiffusionCLIP reconstruction"

#: Other editing methods for Table 3 (StyleCLIP, StyleGAN-NADA, ...), by name: a callable
#: ``fn(ctx, attributes, originals) -> list of edited batches`` or a lazy "module:function" string.
#: It is called once per domain with all that domain's :class:`Attribute` s (so a GAN inversion can
#: be shared by the prompts) and the real test images in [-1, 1]; it returns one (N, 3, S, S) batch
#: per attribute, in order (any square size: it is resized to the originals'), or None when the
#: method does not apply to the domain (no rows then). StyleCLIP and StyleGAN-NADA are registered
#: below; notebook 02 runs them through ``gan_baselines=True`` (which also shows their inversion).
BASELINES: dict[str, Callable | str] = {}


def register_baseline(name: str, fn: Callable | str) -> None:
    """Add an editing method that notebook 02 can list in its ``baselines`` parameter (see :data:`BASELINES`)."""
    BASELINES[name] = fn


def _resolve(fn: Callable | str) -> Callable:
    if callable(fn):
        return fn
    module, _, name = fn.partition(":")
    return getattr(importlib.import_module(module), name)


def _fit(edited: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    edited = edited.to(originals)
    if edited.shape[-2:] != originals.shape[-2:]:
        edited = torch.nn.functional.interpolate(edited, size=originals.shape[-2:], mode="bilinear",
                                                 align_corners=False, antialias=True)
    return edited


def run_baseline(ctx, name: str, items: Sequence[str], originals: torch.Tensor) -> list[EditSet]:
    """Edit ``originals`` with the registered baseline ``name`` for attributes of one domain."""
    if name not in BASELINES:
        known = ", ".join(sorted(BASELINES)) or "none registered"
        raise ValueError(f"unknown baseline '{name}' (known: {known}); add one with "
                         "dclip.studies.experiments.register_baseline(name, fn).")
    attrs = _one_domain(items)
    edits = _resolve(BASELINES[name])(ctx, attrs, originals)
    if edits is None:
        return []
    if len(edits) != len(attrs):
        raise ValueError(f"baseline '{name}' returned {len(edits)} edited batches for {len(attrs)} attributes.")
    return [EditSet(name, item, a.domain, a.source, a.target, originals, _fit(e, originals))
            for item, a, e in zip(items, attrs, edits)]


def gan_outputs(ctx, attrs: Sequence[Attribute], originals: torch.Tensor) -> dict | None:
    """The shared StyleCLIP + StyleGAN-NADA run (:meth:`Context.gan_baselines`) for one domain's
    attributes: one GAN inversion of ``originals``, then every prompt by both methods; None off faces."""
    if any(a.domain != GAN_DOMAIN for a in attrs):
        return None
    return ctx.gan_baselines(originals, [(a.source, a.target) for a in attrs])


def _gan_baseline(method: str) -> Callable:
    """The :data:`BASELINES` hook for one built-in GAN method (both read the same remembered run)."""
    def edits(ctx, attrs, originals):
        out = gan_outputs(ctx, attrs, originals)
        if out is None or method not in out:  # off faces, or a method this run left out (no encoder / directions)
            return None
        return [out[method].edited[(a.source, a.target)] for a in attrs]

    edits.__doc__ = f"{method} edits of the test faces, one batch per attribute (None off faces)."
    return edits


for _method in GAN_METHODS:
    register_baseline(_method, _gan_baseline(_method))


def gan_edit_sets(ctx, items: Sequence[str], originals: torch.Tensor
                  ) -> tuple[dict[str, tuple[torch.Tensor, list[str]]], list[EditSet]]:
    """Fig. 5's GAN columns for one domain's attributes: ``(inversions, edit sets of every GAN method)``.

    ``inversions`` maps each GAN inversion's name ("e4e", "optimisation (W+)") to ``(faces at the
    originals' size, the methods that start from it)``; ``({}, [])`` off faces.
    """
    attrs = _one_domain(items)
    out = gan_outputs(ctx, attrs, originals)
    if out is None:
        return {}, []
    sets = [EditSet(method, item, a.domain, a.source, a.target, originals,
                    _fit(result.edited[(a.source, a.target)], originals))
            for method, result in out.items() for item, a in zip(items, attrs)]
    inversions: dict[str, tuple[torch.Tensor, list[str]]] = {}
    for method, result in out.items():
        inversions.setdefault(result.inversion, (_fit(result.inverted, originals), []))[1].append(method)
    return inversions, sets


def diffusionclip_edits(ctx, item: str | Attribute, originals: torch.Tensor) -> EditSet:
    """Fine-tune for an attribute (eq. 10) and edit ``originals`` at its t0 with test-time steps."""
    attr = attribute(item) if isinstance(item, str) else item
    model = ctx.finetune(attr)
    edited = ctx.edit(model, originals, attr.t0, attr.domain)
    label = item if isinstance(item, str) else f"{attr.source} -> {attr.target}"
    return EditSet("DiffusionCLIP", label, attr.domain, attr.source, attr.target, originals, edited)


def edit_rows(ctx, sets: Sequence[EditSet]) -> list[dict]:
    """One row per edit set: S_dir for its prompt and, on faces (CelebA-HQ), identity similarity
    (``id``) with the network that measured it (``id_net``: :meth:`dclip.notebook.worlds.PhotoWorld.identity_label`).

    Both are measured against the real input images, for every method alike (a GAN edit's
    inversion error counts against it, as it shows in the picture).
    """
    rows = []
    for s in sets:
        s_dir = mean(metrics.directional_similarity(ctx.clip, s.originals, s.edited, s.source, s.target))
        face = s.domain == "celeba_hq"
        verdict = judged(ctx, s.originals, s.edited, s.attribute)
        if ctx.profile.is_toy:  # no face network was trained on toy faces: the judge reads the identity back
            ident, network = verdict.get("toy_id"), TOY_IDENTITY
        else:
            ident = mean(metrics.identity_similarity(ctx.face_model, s.originals, s.edited)) if face else None
            network = ctx.world.identity_label(ctx.face_model) if face else None
        rows.append({"method": s.method, "domain": s.domain, "attribute": s.attribute, "s_dir": s_dir, "id": ident,
                     "id_net": network, **verdict})
    return rows


#: The identity measure of the toy profile (:func:`dclip.toy.judging.edit_outcomes`' ``identity``).
TOY_IDENTITY = "toy judge (identity read back)"


def summary_rows(rows: Sequence[dict], with_paper: bool = True) -> list[dict]:
    """Means per (method, domain, prompt set) beside Table 3's numbers for the same method and domain.

    The prompt set is "Table 3" for the paper's comparison prompts (:data:`TABLE3_PROMPTS`) and
    "other" for the rest (e.g. Pixar); only the former has paper numbers beside it, and only ``with_paper``
    (off at the toy profile: a toy number is never held against the paper's). ``id_net`` names the identity
    network of ``id`` (the paper's ``paper_id`` is ArcFace's).
    """
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        prompts = "Table 3" if row.get("attribute") in TABLE3_PROMPTS else "other"
        groups.setdefault((row["method"], row["domain"], prompts), []).append(row)
    out = []
    for (method, domain, prompts), group in groups.items():
        ids = [r["id"] for r in group if r["id"] is not None]
        nets = sorted({r.get("id_net") for r in group if r["id"] is not None} - {None})
        paper = paper_manipulation(method, domain) if prompts == "Table 3" else {"s_dir": None, "id": None}
        out.append({"method": method, "domain": domain, "prompts": prompts, "n": len(group),
                    "s_dir": sum(r["s_dir"] for r in group) / len(group),
                    "id": sum(ids) / len(ids) if ids else None, "id_net": " / ".join(nets) or None,
                    **({"paper_s_dir": paper["s_dir"], "paper_id": paper["id"]} if with_paper else {})})
    return out


def _by_domain(attributes: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name in attributes:
        groups.setdefault(attribute(name).domain, []).append(name)
    return groups


def _gan_notes(ctx, domains: Sequence[str]) -> None:
    """Say which inversion the GAN baselines start from, and which domains have none."""
    from ..baselines.comparison import RESTYLE_NOT_INCLUDED

    ctx.note(RESTYLE_NOT_INCLUDED)
    for domain in domains:
        if domain != GAN_DOMAIN:
            ctx.note(f"{domain}: no GAN baseline (the FFHQ StyleGAN2 generates faces only); its prompts show "
                     "DiffusionCLIP alone.")


def manipulation_study(ctx, attributes: Sequence[str], baselines: Sequence[str] = (), *, gan_baselines: bool = False,
                       per_prompt: int = 2) -> Study:
    """Notebook 02 (Fig. 5, Tables 1 and 3): each method on the same test images of every prompt.

    DiffusionCLIP fine-tunes per prompt and edits at its t0. ``gan_baselines`` adds, on the face
    prompts, StyleCLIP from the e4e encoder (as the paper), StyleCLIP and StyleGAN-NADA from one
    optimisation-based W+ projection (the paper's NADA used ReStyle-pSp; a printed note says so);
    ``baselines`` adds registered methods (:data:`BASELINES`).

    Rows: per method and prompt (:func:`edit_rows`). ``extra["summary"]``: per method, domain and
    prompt set beside Table 3 (:func:`summary_rows`). ``extra["reconstruction"]``: the GAN inversion
    and DiffusionCLIP's reconstruction at each t0 beside Table 1. Images: ``original_<domain>``,
    ``GAN inversion (<name>)/<domain>``, ``DiffusionCLIP reconstruction/<attribute>`` and
    ``<method>/<attribute>``. The figure has ``per_prompt`` rows per prompt: original | GAN inversion
    (e4e) | GAN inversion (optimisation (W+)) | StyleCLIP | StyleCLIP (optimisation) | StyleGAN-NADA |
    (other baselines) | DiffusionCLIP reconstruction | DiffusionCLIP.
    """
    if gan_baselines and ctx.profile.is_toy:
        ctx.note("toy profile: the GAN baselines edit in the toy StyleGAN2 in the section 'the GAN baselines in the "
                 "toy world' below (on the faces that lack each edit's target, judged against the true edit).")
        gan_baselines = False
    if gan_baselines and ctx.profile.gan == "none":
        ctx.note(f"profile '{ctx.profile.name}' has no StyleGAN2 of its images: the StyleCLIP and StyleGAN-NADA "
                 "columns need the paper profile.")
        gan_baselines = False
    others = [b for b in baselines if not (gan_baselines and b in GAN_METHODS)]
    groups = _by_domain(attributes)
    if gan_baselines:
        _gan_notes(ctx, list(groups))
    study, sets, recon, inversion_columns = Study(), [], [], []
    for domain, names in groups.items():
        originals = ctx.world.images(domain)
        study.images[f"original_{domain}"] = originals.cpu()
        recs = diffusion_reconstructions(ctx, names, originals)  # first: the edits reuse its latents
        sets.extend(diffusionclip_edits(ctx, name, originals) for name in names)
        study.images.update({f"{DIFFUSION_RECONSTRUCTION}/{n}": recs[attribute(n).t0].cpu() for n in names})
        if gan_baselines:
            inversions, gan_sets = gan_edit_sets(ctx, names, originals)
            sets.extend(gan_sets)
            for name, (inverted, _) in inversions.items():
                column = f"{GAN_INVERSION} ({name})"
                study.images[f"{column}/{domain}"] = inverted.cpu()
                inversion_columns += [column] if column not in inversion_columns else []
            recon.extend(gan_inversion_rows(ctx, originals, inversions))
        for b in others:
            sets.extend(run_baseline(ctx, b, names, originals))
        recon.extend(diffusion_reconstruction_rows(ctx, domain, originals, recs))
    study.images.update({f"{s.method}/{s.attribute}": s.edited.cpu() for s in sets})
    study.rows = edit_rows(ctx, sets)
    study.extra["summary"] = summary_rows(study.rows, with_paper=not ctx.profile.is_toy)
    study.extra["reconstruction"] = recon
    shown = {name: _shown_faces(ctx, study.images[f"original_{attribute(name).domain}"], name, per_prompt)
             for name in attributes}
    _comparison_grid(study, attributes, sets, inversion_columns, shown)
    return study


def _shown_faces(ctx, originals: torch.Tensor, name: str, n: int) -> list[int]:
    """Which test images a prompt's figure rows show: the first ``n``, or at the toy profile the first ``n``
    that lack the target (an edit shown on a face that already has it shows nothing)."""
    from ..toy.judging import JUDGE_TARGETS, judge_target
    from .common import lacking_mask

    if not ctx.profile.is_toy or name not in JUDGE_TARGETS:
        return list(range(min(n, len(originals))))
    head, value = judge_target(name)
    read = torch.tensor([float(r[head] != value) for r in ctx.judge.predict(originals.cpu())])
    lacking = lacking_mask(ctx.world.records(originals), name, read)
    return [i for i in range(len(originals)) if lacking[i]][:n]


def _blank_caption(column: str) -> str:
    return "n/a: faces only" if column.startswith(GAN_INVERSION) or column in GAN_METHODS else "n/a"


def _comparison_grid(study: Study, names: Sequence[str], sets: Sequence[EditSet], inversion_columns: Sequence[str],
                     shown: dict[str, list[int]]) -> None:
    """Fig. 5's layout: a row per shown test image (``shown[name]``) per prompt; a method without an edit there is
    left blank."""
    methods = [m for m in dict.fromkeys(s.method for s in sets) if m != "DiffusionCLIP"]
    columns = ["original", *inversion_columns, *methods, DIFFUSION_RECONSTRUCTION, "DiffusionCLIP"]
    for name in names:
        domain = attribute(name).domain
        cells = {"original": study.images[f"original_{domain}"],
                 **{c: study.images.get(f"{c}/{domain}") for c in inversion_columns},
                 **{m: study.images.get(f"{m}/{name}") for m in (*methods, "DiffusionCLIP", DIFFUSION_RECONSTRUCTION)}}
        for k, i in enumerate(shown[name]):
            # under the top row's column labels, a blank cell of a prompt's first row says why
            say_why = k == 0 and bool(study.grid)
            study.captions.append([_blank_caption(c) if say_why and cells[c] is None else "" for c in columns])
            study.grid.append([None if cells[c] is None else cells[c][i] for c in columns])
            study.row_labels.append(f"{name} {k + 1}")
    study.col_labels = [c.replace(" (", "\n(", 1) if c in inversion_columns
                        else c.replace(" ", "\n", 1) if c in (DIFFUSION_RECONSTRUCTION, *GAN_METHODS) else c
                        for c in columns]
    study.title = "Fig. 5 / Table 3: the same test images edited by each method"
