"""What the README says about the toy results, written from ``figures/toy/`` (``python -m dclip figures`` at the end
of every run; ``tests/test_doc_tables.py`` fails when a committed doc disagrees): the verdict table (each notebook's
``NN_claims.csv``), the edit table (``02_judged_edits.csv``), the GAN side's table and sentence
(``02_compare_methods.csv``, ``02_gan_inversion.csv``), the toy StyleGAN2's bars (its shipped sidecar) and how
long the figures took (``manifest.json``).

Only the toy profile's files fill the README: a paper-profile run writes ``figures/`` and never these.
"""
from __future__ import annotations

import json
from pathlib import Path

from .doc_tables import DOC_TABLES, DocBlock, markdown_table, read_rows

__all__ = ["DOC_BLOCKS", "README_BLOCKS", "verdict_table", "paper_verdict_table", "edit_table", "gan_table", "gan_sentence", "gan_bars",
           "figures_time"]

TOY = "figures/toy"
#: The notebooks whose claims the verdict table lists, in its order.
CLAIM_NOTEBOOKS = ("01_inversion_quality", "02_styleclip_comparison", "03_hyperparameter_ablation",
                   "04_latent_vs_finetune", "05_novel_applications")
#: The GAN side's methods as the README's columns, then DiffusionCLIP.
GAN_COLUMNS = (("StyleCLIP", "e4e", "StyleCLIP (e4e)"), ("StyleCLIP (global directions)", "e4e", "StyleCLIP GD (e4e)"),
               ("StyleCLIP (optimisation)", "optimisation (W+)", "StyleCLIP (W+)"),
               ("StyleGAN-NADA", "optimisation (W+)", "StyleGAN-NADA (W+)"))


def _ci(row: dict, key: str, digits: int = 2) -> str:
    value, interval = float(row[key]), json.loads(row.get(f"{key}_ci") or "null")
    text = f"{value:.{digits}f}"
    return f"{text} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]" if interval else text


def _count(row: dict, key: str = "hit") -> str:
    """A rate as "k/n" when it is one fine-tune's share of ``of`` faces."""
    n = int(float(row["of"]))
    return f"{round(float(row[key]) * n)}/{n}"


def _claims(root: Path, folder: str) -> list[list[str]] | None:
    """The verdict table's rows from ``folder``'s ``NN_claims.csv``, or None when one is missing."""
    rows = []
    for name in CLAIM_NOTEBOOKS:
        found = read_rows(root / folder / f"{name[:2]}_claims.csv")
        if found is None:
            return None
        link = f"[{name[:2]}](notebooks/{name}.ipynb) ([executed]({folder}/notebooks/{name}.ipynb))"
        for r in found:
            same = next((row for row in rows if row[:2] == [r["claim"], r["measured"]]), None)
            if same is not None:  # checked again by a later notebook on the same numbers: one row, both links
                same[3] += f", {link}"
                continue
            rows.append([r["claim"], r["measured"], f"**{r['verdict']}** ({r['held']}/{r['cases']})"
                         if int(r["cases"]) else "not measured", link])
    return rows


def _verdicts(rows: list[list[str]], folder: str, where: str) -> str:
    return markdown_table(["claim (paper)", f"measured {where}", "verdict (cases held)", "notebook"], rows) + \
        f"\n\n*Written by `python -m dclip figures` from `{folder}/NN_claims.csv`; do not edit by hand.*"


def verdict_table(root: Path) -> str | None:
    """Every claim the notebooks checked at the toy profile, with what was measured and its verdict
    (``figures/toy/NN_claims.csv``)."""
    rows = _claims(root, TOY)
    return None if rows is None else _verdicts(rows, TOY, "at toy")


def paper_verdict_table(root: Path) -> str:
    """The same at the paper profile (``figures/NN_claims.csv``, from ``make figures PROFILE=paper`` on a GPU), or a
    line saying that no such run is committed: the paper's section never takes the toy numbers."""
    rows = _claims(root, "figures")
    if rows is None:
        return ("*No paper-profile run is committed yet: `make figures PROFILE=paper` on a CUDA GPU writes its verdicts "
                "here (`figures/NN_claims.csv`).*")
    return _verdicts(rows, "figures", "with the pretrained models")


def _attribute_label(name: str) -> str:
    from ..method.attributes import attribute

    a = attribute(name)
    return f'"{a.source}" → "{a.target}"'


def edit_table(root: Path) -> str | None:
    """The fine-tuned toy edits judged against the truth (notebook 02's ``02_judged_edits.csv``)."""
    found = read_rows(root / TOY / "02_judged_edits.csv")
    if found is None:
        return None
    rows = [[f"[{_attribute_label(r['edit'])}]({TOY}/02_edit_{r['edit']}.png)", r["t0"], _ci(r, "hit"),
             _ci(r, "kept"), f"{float(r['formed']):.2f}",
             f"{_ci(r, 'judge_to_true')} ({float(r['original_judge_to_true']):.2f})", f"{float(r['toy_id']):.2f}",
             "meets the targets" if r["targets met"] == "True" else "misses the targets"]
            for r in found if r["model"] == "fine-tuned"]
    runs, faces = found[0]["runs"], found[0]["of"]
    return markdown_table(["edit (prompts)", "t0", "hit", "kept", "formed", "distance to the true edit (original's)",
                           "toy ID", "verdict"], rows) + \
        (f"\n\n*{runs} fine-tunes per edit, {faces} test faces each; written by `python -m dclip figures` from "
         f"`{TOY}/02_judged_edits.csv`; do not edit by hand.*")


def _method_rows(found: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["edit"], r["method"], r["inversion"]): r for r in found}


def gan_table(root: Path) -> str | None:
    """Hit per method and edit on the GAN side (``02_compare_methods.csv``): a GAN method's hit as k/n faces."""
    found = read_rows(root / TOY / "02_compare_methods.csv")
    if found is None:
        return None
    by = _method_rows(found)
    edits = list(dict.fromkeys((r["edit"], r["kind"]) for r in found))
    rows = []
    for edit, kind in edits:
        cells = [f"{float(by[edit, m, i]['hit']):.2f} ({_count(by[edit, m, i])})" if (edit, m, i) in by else "–"
                 for m, i, _ in GAN_COLUMNS]
        ours = next(r for r in found if r["edit"] == edit and r["method"] == "DiffusionCLIP")
        rows.append([f"{edit.replace('_', ' ')} ({kind})", *cells, _ci(ours, "hit")])
    return markdown_table(["edit", *[label for _, _, label in GAN_COLUMNS], "DiffusionCLIP"], rows) + \
        f"\n\n*Written by `python -m dclip figures` from `{TOY}/02_compare_methods.csv`; do not edit by hand.*"


def gan_sentence(root: Path) -> str | None:
    """The GAN side in one sentence: the best hit any GAN method reached, the best kept in domain, and what global
    directions keep (``02_compare_methods.csv``; the inversions' kept from ``02_gan_inversion.csv``)."""
    found, inversions = read_rows(root / TOY / "02_compare_methods.csv"), read_rows(root / TOY / "02_gan_inversion.csv")
    if found is None or inversions is None:
        return None
    gans = [r for r in found if r["method"] != "DiffusionCLIP"]
    best = max(gans, key=lambda r: float(r["hit"]))
    kept_in = max(float(r["kept"]) for r in gans if r["kind"] == "in domain")
    directions = [float(r["kept"]) for r in gans if r["method"] == "StyleCLIP (global directions)"]
    kept = {r["inversion"]: float(r["attributes_kept"]) for r in inversions if not r["inversion"].startswith("DDIM")}
    return (f"the best hit of any GAN method on any edit is {float(best['hit']):.3f} ({_count(best)} faces: "
            f"{best['method']} from {best['inversion']}, {best['edit'].replace('_', ' ')}); kept is at most "
            f"{kept_in:.2f} in domain, and StyleCLIP's global directions at α 4.1 keep {min(directions):.2f}–"
            f"{max(directions):.2f} of the attributes. The GAN inversions themselves keep "
            + " and ".join(f"{v:.2f} ({k})" for k, v in kept.items()))


def gan_bars(root: Path) -> str | None:
    """The shipped toy StyleGAN2's sample quality against its bars (its sidecar's ``bars``, measured when it was
    trained: :func:`dclip.studies.toy_gan.gan_bars`)."""
    path = root / "dclip" / "models" / "shipped" / "toy_stylegan2.json"
    if not path.is_file():
        return None
    q = json.loads(path.read_text()).get("bars")
    if not q:
        return None
    gaps, fd, bars = q["frequency_gaps"], q["frechet_to_real"], q["bars"]
    worst = max(gaps, key=gaps.get)
    lo, hi = q["formed_ci"]
    return (f"it {'meets' if q['meets_bars'] else 'does **not** meet'} its bars on {q['n']} samples: the judge accepts "
            f"{100 * q['formed']:.0f} % [{100 * lo:.0f} %, {100 * hi:.0f} %] of them as well-formed toy faces (bar "
            f"{100 * bars['formed']:.0f} %) and reads {worst} {100 * gaps[worst]:.0f} points off the domain's frequency "
            f"(bar {100 * bars['frequency_gap']:.0f}); Fréchet distance on the judge's features to real faces "
            f"{fd['gan']:.1f} (toy DDPM {fd['ddpm']:.1f}, real vs real {fd['real (another set)']:.1f})")


def figures_time(root: Path) -> str | None:
    """How long each toy notebook ran in the figures' last run, and on what (``manifest.json``)."""
    path = root / TOY / "manifest.json"
    if not path.is_file():
        return None
    entries = json.loads(path.read_text())["notebooks"]
    names = sorted(entries)
    days = sorted({entries[n]["started"][:10] for n in names})
    total = sum(entries[n]["duration_s"] for n in names)
    return (f"at the toy profile on {entries[names[0]]['device']}, measured {' to '.join(days[::max(len(days) - 1, 1)])}: "
            + ", ".join(f"{n[:2]} {entries[n]['duration_s']:.0f} s" for n in names)
            + f"; {total / 60:.0f} min in all")


README_BLOCKS: tuple[DocBlock, ...] = (
    DocBlock("README.md", "figures-time", figures_time),
    DocBlock("README.md", "verdicts", verdict_table),
    DocBlock("README.md", "verdicts-paper", paper_verdict_table),
    DocBlock("README.md", "gan-bars", gan_bars),
    DocBlock("README.md", "edit-table", edit_table),
    DocBlock("README.md", "gan-sentence", gan_sentence),
    DocBlock("README.md", "gan-table", gan_table),
)

#: Every generated part of the docs.
DOC_BLOCKS = DOC_TABLES + README_BLOCKS
