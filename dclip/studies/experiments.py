"""The studies behind the numbered notebooks, as plain functions of a :class:`~dclip.notebook.context.Context`.

Each returns a :class:`Study`: the rows of its table and the images of its figure, so a notebook
is a parameters cell, one call, one figure and one printed table.

* :func:`reconstruction_study`  -- notebook 01, Table 1 / Fig. 1a (plus dclip's exact inversion).
* :func:`manipulation_study`    -- notebook 02, Fig. 5 and Table 3 (S_dir, ID) beside StyleCLIP and
  StyleGAN-NADA (with their GAN inversions -- e4e and W+ optimisation -- and DiffusionCLIP's
  reconstruction, Table 1), plus a hook for further baselines.
* :func:`step_ablation`, :func:`t0_ablation` -- notebook 03, Fig. 8a and 8b.
* :func:`latent_vs_finetune`    -- notebook 04, Fig. 9.
* :func:`novel_applications`    -- notebook 05, Fig. 7.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..method import metrics
from ..method.attributes import Attribute, attribute
from ..method.accelerated import generate_fast
from ..runtime.fast import EDITING, RECONSTRUCTION
from ..method.latents import precompute
from .paper_numbers import TABLE3_PROMPTS, paper_gan_inversion, paper_manipulation, paper_reconstruction

__all__ = ["Study", "EditSet", "BASELINES", "GAN_METHODS", "GAN_DOMAIN", "register_baseline", "run_baseline",
           "reconstruction_study", "gan_outputs", "gan_edit_sets", "diffusionclip_edits", "diffusion_reconstructions",
           "edit_rows", "summary_rows", "gan_inversion_rows", "diffusion_reconstruction_rows", "manipulation_study",
           "step_ablation", "t0_ablation", "latent_vs_finetune", "novel_applications", "mean"]


@dataclass
class Study:
    """A notebook's result: table rows (dicts of plain values), named image batches and its figure's grid."""

    rows: list[dict] = field(default_factory=list)
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, list[dict]] = field(default_factory=dict)  # further tables by name
    grid: list[list[torch.Tensor | None]] = field(default_factory=list)  # figure rows of (3, H, W) images
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    captions: list[list[str]] = field(default_factory=list)  # per-cell titles where columns differ by row
    title: str = ""

    def figure(self, stamp: str = ""):
        """The study's image grid as a matplotlib figure, stamped with ``stamp`` (the profile's)."""
        from .plots import image_grid

        return image_grid(self.grid, row_labels=self.row_labels, col_labels=self.col_labels,
                          captions=self.captions, title=self.title, stamp_text=stamp)

    def layout(self, keys: Sequence[str], col_labels: Sequence[str], *, n_rows: int | None = None,
               title: str = "", row_label: str = "image {}") -> None:
        """Grid = one row per image (up to ``n_rows``), one column per key of :attr:`images`."""
        n = min(len(self.images[keys[0]]), n_rows or len(self.images[keys[0]]))
        self.grid = [[self.images[k][i] for k in keys] for i in range(n)]
        self.row_labels = [row_label.format(i + 1) for i in range(n)]
        self.col_labels, self.title = list(col_labels), title


@dataclass
class EditSet:
    """(original, edited) pairs of one method for one prompt: the unit every manipulation metric takes."""

    method: str
    attribute: str
    domain: str
    source: str
    target: str
    originals: torch.Tensor
    edited: torch.Tensor


def judged(ctx, originals: torch.Tensor, edited: torch.Tensor, name: str) -> dict:
    """At the toy profile, the judge's verdict on an edit towards attribute ``name``
    (:func:`dclip.toy.judging.judge_edit`): ``hit`` (target seen, among the ``of`` originals that lacked it)
    and ``kept`` (other attributes kept); ``{}`` at other profiles or for edits the judge cannot read."""
    if not ctx.profile.is_toy:
        return {}
    from ..toy.judging import JUDGE_TARGETS, judge_edit

    if name not in JUDGE_TARGETS:
        return {"hit": None, "of": None, "kept": None}
    verdict = judge_edit(ctx.judge, originals, edited, name)
    return {"hit": verdict["hit"], "of": verdict["lacking"], "kept": verdict["kept"]}


def mean(values: torch.Tensor) -> float:
    """The mean of a metric's per-image values as a Python float."""
    return float(values.float().mean())


# ------------------------------------------------------------------------------------------------
# Notebook 01: reconstruction (Table 1, Fig. 1a)
# ------------------------------------------------------------------------------------------------

# The reconstruction studies (Table 1, Fig. 8a) run at the engine's one precision for reconstructions
# (dclip.runtime.fast.RECONSTRUCTION: fp32 on every device; on the CPU bit-identical to plain invert/generate).
_FP32 = RECONSTRUCTION


def _latents(model, x: torch.Tensor, t0: int, steps: int, exact: bool = False):
    """``x`` inverted to t0 and reconstructed with S_inv = S_gen = ``steps`` (:func:`precompute`, fp32, one batch)."""
    return precompute(model, x, int(t0), int(steps), exact=exact, batch_size=len(x), fast=_FP32)


def _regenerate(model, latents, steps: int) -> torch.Tensor:
    """Generation from ``latents.x_lat`` with another S_gen than its S_inv (fp32, as :func:`_latents`)."""
    from ..runtime.fast import device_of

    return generate_fast(model, latents.x_lat.to(device_of(model)), latents.t0, int(steps), fast=_FP32)


def reconstruction_study(ctx, images: torch.Tensor, t0s: Sequence[int] = (300, 400, 500, 600), *,
                         steps: int = 0, exact: bool = True, domain: str = "celeba_hq") -> Study:
    """Invert and regenerate ``images`` at each t0 with S_inv = S_gen = ``steps`` (0: the profile's test S).

    Rows: the paper's DDIM inversion (beside Table 1's DiffusionCLIP numbers) and, with ``exact``,
    dclip's fixed-point inversion (``invert(..., exact=True)``, beyond the paper) at the same S.
    Images: ``original`` and ``ddim_<t0>`` / ``exact_<t0>`` reconstructions.
    """
    model, steps = ctx.unet(domain), int(steps or ctx.profile.n_inv)
    study = Study(images={"original": images.cpu()})
    variants = [("DDIM (paper)", False)] + ([("exact (dclip)", True)] if exact else [])
    for label, is_exact in variants:
        for t0 in t0s:
            rec = _latents(model, images, t0, steps, is_exact).x_rec.to(images.device)
            study.images[f"{'exact' if is_exact else 'ddim'}_{t0}"] = rec.cpu()
            scores = metrics.reconstruction_scores(ctx.lpips, images, rec)
            paper = paper_reconstruction(t0) if not is_exact else {"mae": None, "lpips": None, "ssim": None}
            study.rows.append({"inversion": label, "t0": int(t0), "S": steps, **scores,
                               "paper_mae": paper["mae"], "paper_lpips": paper["lpips"],
                               "paper_ssim": paper["ssim"]})
    keys = [k for k in study.images if k != "original"]
    study.layout(["original"] + keys, ["original"] + [k.replace("ddim_", "DDIM t0=").replace("exact_", "exact t0=")
                                                      for k in keys], n_rows=4,
                 title=f"Fig. 1a / Table 1: reconstruction with S_inv = S_gen = {steps}")
    return study


# ------------------------------------------------------------------------------------------------
# Notebook 02: comparison with GAN-based editing (Fig. 5, Tables 1 and 3)
# ------------------------------------------------------------------------------------------------

#: The built-in GAN baselines (the keys of :func:`dclip.baselines.comparison.run_gan_baselines`' result):
#: StyleCLIP from e4e (the paper's), StyleCLIP from the W+ projection, StyleGAN-NADA from the projection.
GAN_METHODS = ("StyleCLIP", "StyleCLIP (optimisation)", "StyleGAN-NADA")

#: The one domain the GAN baselines apply to: the FFHQ StyleGAN2 generates faces only.
GAN_DOMAIN = "celeba_hq"

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


def _one_domain(items: Sequence[str]) -> list[Attribute]:
    attrs = [attribute(item) for item in items]
    if len({a.domain for a in attrs}) > 1:
        raise ValueError("run_baseline takes the attributes of one domain at a time.")
    return attrs


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
        return None if out is None else [out[method].edited[(a.source, a.target)] for a in attrs]

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


def diffusion_reconstructions(ctx, items: Sequence[str], originals: torch.Tensor) -> dict[int, torch.Tensor]:
    """DiffusionCLIP's reconstruction at each distinct t0 of one domain's attributes (Table 1, Fig. 5).

    The edit without fine-tuning: DDIM inversion to t0 and generation with the original model, at
    the profile's test-time S_inv / S_gen -- what each edit starts from (the same latents: computed
    once per t0 and shared with :meth:`Context.edit`).
    """
    attrs = _one_domain(items)
    return {t0: _reconstruction(ctx, originals, t0, attrs[0].domain) for t0 in sorted({a.t0 for a in attrs})}


def _reconstruction(ctx, originals: torch.Tensor, t0: int, domain: str) -> torch.Tensor:
    """The original model's reconstruction from the session's shared latents (:meth:`Context.latents`),
    regenerated with S_gen steps where S_gen differs from S_inv."""
    latents, p = ctx.latents(originals, t0, domain), ctx.profile
    if p.n_gen == p.n_inv:
        return latents.x_rec.to(originals.device)
    return generate_fast(ctx.unet(domain), latents.x_lat.to(originals.device), t0, p.n_gen, fast=RECONSTRUCTION)


def edit_rows(ctx, sets: Sequence[EditSet]) -> list[dict]:
    """One row per edit set: S_dir for its prompt and, on faces (CelebA-HQ), identity similarity
    (``id``) with the network that measured it (``id_net``: :attr:`Context.identity_network`).

    Both are measured against the real input images, for every method alike (a GAN edit's
    inversion error counts against it, as it shows in the picture).
    """
    rows = []
    for s in sets:
        s_dir = mean(metrics.directional_similarity(ctx.clip, s.originals, s.edited, s.source, s.target))
        face = s.domain == "celeba_hq"
        ident = mean(metrics.identity_similarity(ctx.face_model, s.originals, s.edited)) if face else None
        rows.append({"method": s.method, "domain": s.domain, "attribute": s.attribute, "s_dir": s_dir, "id": ident,
                     "id_net": ctx.identity_network if face else None, **judged(ctx, s.originals, s.edited, s.attribute)})
    return rows


def summary_rows(rows: Sequence[dict]) -> list[dict]:
    """Means per (method, domain, prompt set) beside Table 3's numbers for the same method and domain.

    The prompt set is "Table 3" for the paper's comparison prompts (:data:`TABLE3_PROMPTS`) and
    "other" for the rest (e.g. Pixar); only the former has paper numbers beside it. ``id_net`` names
    the identity network of ``id`` (the paper's ``paper_id`` is ArcFace's).
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
                    "paper_s_dir": paper["s_dir"], "paper_id": paper["id"]})
    return out


def _table1_t0(t0: int) -> int:
    """The Table 1 row a return step stands for: the authors' 301, 601 ... are the paper's 300, 600."""
    return t0 - 1 if t0 % 100 == 1 else t0


def _reconstruction_row(method: str, inversion: str, domain: str, t0: int | None, scores: dict | None,
                        paper: dict) -> dict:
    scores = scores or {"mae": None, "lpips": None, "ssim": None}
    return {"method": method, "inversion": inversion, "domain": domain, "t0": t0, **scores,
            **{f"paper_{k}": paper[k] for k in ("mae", "lpips", "ssim")}}


#: Table 1's name of each GAN inversion (:data:`dclip.baselines.comparison.E4E_INVERSION`, ...).
_TABLE1_GAN = {"e4e": "e4e", "optimisation (W+)": "Optimization"}


def gan_inversion_rows(ctx, originals: torch.Tensor, inversions: dict[str, tuple[torch.Tensor, list[str]]]
                       ) -> list[dict]:
    """Table 1's GAN rows, measured: each inversion of :func:`gan_edit_sets` beside the paper's (e4e,
    Optimization), labelled with the methods that start from it."""
    return [_reconstruction_row(" / ".join(methods), name, GAN_DOMAIN, None,
                                metrics.reconstruction_scores(ctx.lpips, originals, inverted),
                                paper_gan_inversion(_TABLE1_GAN.get(name, name)))
            for name, (inverted, methods) in inversions.items()]


def diffusion_reconstruction_rows(ctx, domain: str, originals: torch.Tensor, recs: dict[int, torch.Tensor]
                                  ) -> list[dict]:
    """Table 1's DiffusionCLIP rows: the reconstruction at each t0, beside the paper's (CelebA-HQ only)."""
    none = {"mae": None, "lpips": None, "ssim": None}
    return [_reconstruction_row("DiffusionCLIP", "DDIM", domain, t0,
                                metrics.reconstruction_scores(ctx.lpips, originals, rec),
                                paper_reconstruction(_table1_t0(t0)) if domain == "celeba_hq" else none)
            for t0, rec in recs.items()]


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
        originals = ctx.images(domain)
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
    study.extra["summary"] = summary_rows(study.rows)
    study.extra["reconstruction"] = recon
    _comparison_grid(study, attributes, sets, inversion_columns, per_prompt)
    return study


def _blank_caption(column: str) -> str:
    return "n/a: faces only" if column.startswith(GAN_INVERSION) or column in GAN_METHODS else "n/a"


def _comparison_grid(study: Study, names: Sequence[str], sets: Sequence[EditSet], inversion_columns: Sequence[str],
                     per_prompt: int) -> None:
    """Fig. 5's layout: ``per_prompt`` rows per prompt; a method without an edit there is left blank."""
    methods = [m for m in dict.fromkeys(s.method for s in sets) if m != "DiffusionCLIP"]
    columns = ["original", *inversion_columns, *methods, DIFFUSION_RECONSTRUCTION, "DiffusionCLIP"]
    for name in names:
        domain = attribute(name).domain
        cells = {"original": study.images[f"original_{domain}"],
                 **{c: study.images.get(f"{c}/{domain}") for c in inversion_columns},
                 **{m: study.images.get(f"{m}/{name}") for m in (*methods, "DiffusionCLIP", DIFFUSION_RECONSTRUCTION)}}
        for i in range(min(per_prompt, len(cells["original"]))):
            # under the top row's column labels, a blank cell of a prompt's first row says why
            say_why = i == 0 and bool(study.grid)
            study.captions.append([_blank_caption(c) if say_why and cells[c] is None else "" for c in columns])
            study.grid.append([None if cells[c] is None else cells[c][i] for c in columns])
            study.row_labels.append(f"{name} {i + 1}")
    study.col_labels = [c.replace(" (", "\n(", 1) if c in inversion_columns
                        else c.replace(" ", "\n", 1) if c in (DIFFUSION_RECONSTRUCTION, *GAN_METHODS) else c
                        for c in columns]
    study.title = "Fig. 5 / Table 3: the same test images edited by each method"


def step_ablation(ctx, images: torch.Tensor, t0: int = 600, steps: Sequence[int] = (6, 40, 200), *,
                  domain: str = "celeba_hq") -> Study:
    """Fig. 8a: reconstruct at ``t0`` for every S_inv × S_gen in ``steps``²; rows carry MAE/LPIPS/SSIM.

    Each latent is inverted once per S_inv (with its S_gen = S_inv reconstruction) and regenerated
    with every other S_gen. Images: ``original`` and ``rec_<S_inv>_<S_gen>``.
    """
    model = ctx.unet(domain)
    study = Study(images={"original": images.cpu()})
    for s_inv in steps:
        latents = _latents(model, images, t0, s_inv)
        for s_gen in steps:
            rec = (latents.x_rec if s_gen == s_inv else _regenerate(model, latents, s_gen)).to(images.device)
            study.images[f"rec_{s_inv}_{s_gen}"] = rec.cpu()
            study.rows.append({"S_inv": int(s_inv), "S_gen": int(s_gen),
                               **metrics.reconstruction_scores(ctx.lpips, images, rec)})
    study.grid = [[images[0].cpu() if i == 0 else None] + [study.images[f"rec_{a}_{b}"][0] for b in steps]
                  for i, a in enumerate(steps)]
    study.row_labels = [f"S_inv={a}" for a in steps]
    study.col_labels = ["original"] + [f"S_gen={b}" for b in steps]
    study.title = f"Fig. 8a: reconstruction at t0 = {t0}"
    return study


def t0_ablation(ctx, attributes: Sequence[str], t0s: Sequence[int] = (300, 500, 700), *,
                n_images: int = 1) -> Study:
    """Fig. 8b: fine-tune each attribute at every t0 and edit the first ``n_images`` test images.

    Rows: attribute, t0, S_dir. Images: ``original_<domain>`` and ``<attribute>_<t0>``.
    """
    study = Study()
    for name in attributes:
        attr = attribute(name)
        originals = ctx.images(attr.domain, n_images)
        study.images.setdefault(f"original_{attr.domain}", originals.cpu())
        for t0 in t0s:
            edited = ctx.edit(ctx.finetune(attr, int(t0)), originals, int(t0), attr.domain)
            study.images[f"{name}_{t0}"] = edited.cpu()
            s_dir = mean(metrics.directional_similarity(ctx.clip, originals, edited, attr.source, attr.target))
            study.rows.append({"attribute": name, "t0": int(t0), "s_dir": s_dir,
                               "mae": mean(metrics.mae(originals, edited)), **judged(ctx, originals, edited, name)})
        study.grid.append([originals[0].cpu()] + [study.images[f"{name}_{t0}"][0] for t0 in t0s])
        study.row_labels.append(name)
    study.col_labels = ["original"] + [f"t0={t0}" for t0 in t0s]
    study.title = "Fig. 8b: the same manipulation fine-tuned and applied at each t0"
    return study


# ------------------------------------------------------------------------------------------------
# Notebook 04: latent optimisation vs fine-tuning (Fig. 9)
# ------------------------------------------------------------------------------------------------

def latent_vs_finetune(ctx, attributes: Sequence[str]) -> Study:
    """Fig. 9: each prompt by optimising x_t0 of a frozen model, and by fine-tuning the model.

    Rows: attribute, method, S_dir, MAE to the input. Images: ``original_<domain>``,
    ``latent/<attribute>`` and ``finetune/<attribute>``.
    """
    from ..method.edit import latent_optimisation

    p, study = ctx.profile, Study()
    for name in attributes:
        attr = attribute(name)
        originals = ctx.images(attr.domain)
        study.images.setdefault(f"original_{attr.domain}", originals.cpu())
        optimised, _ = latent_optimisation(ctx.unet(attr.domain), ctx.clip, originals, attr.source, attr.target,
                                           attr.t0, n_inv=p.n_inv_train, n_gen=p.n_gen_train,
                                           iterations=p.latent_opt_iterations, lr=p.latent_opt_lr)
        tuned = ctx.edit(ctx.finetune(attr), originals, attr.t0, attr.domain)
        for key, method, edited in (("latent", "latent optimisation", optimised), ("finetune", "fine-tuning", tuned)):
            study.images[f"{key}/{name}"] = edited.detach().cpu()
            study.rows.append({"attribute": name, "method": method,
                               "s_dir": mean(metrics.directional_similarity(ctx.clip, originals, edited,
                                                                            attr.source, attr.target)),
                               "mae": mean(metrics.mae(originals, edited)),
                               **judged(ctx, originals, edited.detach(), name)})
    domain = attribute(attributes[0]).domain
    for i in range(min(2, len(study.images[f"original_{domain}"]))):
        for key, method in (("latent", "latent optimisation"), ("finetune", "fine-tuning")):
            study.grid.append([study.images[f"original_{domain}"][i]]
                              + [study.images[f"{key}/{name}"][i] for name in attributes])
            study.row_labels.append(f"{i + 1}: {method}")
    study.col_labels = ["original"] + list(attributes)
    study.title = "Fig. 9: latent optimisation vs fine-tuning"
    return study


# ------------------------------------------------------------------------------------------------
# Notebook 05: novel applications (Fig. 7)
# ------------------------------------------------------------------------------------------------

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
                                      n_gen=p.n_gen, generator=ctx.generator(seed), **kwargs)
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
    unseen_inputs = ctx.unseen_images(portraits)
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
