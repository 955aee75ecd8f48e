"""What the later accelerations of DiffusionCLIP buy (beyond the paper; issue 24): the recipe table that
``make bench`` measures (``bench/recipes.py``) as notebook 04 shows it, a table and a speed/quality plot.

The numbers are read from the benchmark's results file, not recomputed here: the table takes about half an hour
of CPU, which is the benchmark's job. Each row is a way to learn and apply the toy glasses edit (LoRA, the loss at
the first step, fewer inversion steps, batching, finishing generation early, fewer steps to apply, all of them),
with its speed-ups over the paper's recipe, its judged quality with 95 % intervals and its paired difference to
the paper's recipe. An option *matches* the paper's recipe when it is not worse by a margin fixed before measuring
(:func:`non_inferior`: a non-inferiority test on the paired 95 % intervals).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .common import Study

__all__ = ["BENCH_RESULTS", "read_results", "recipe_study", "speed_quality_plot", "non_inferior", "HIT_MARGIN",
           "DISTANCE_MARGIN"]

#: Where ``make bench`` writes the recipe table in a source checkout.
BENCH_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results-recipes-cpu.json"


#: The non-inferiority margins of issue 34, fixed before any recipe was measured against them: an option may lose at
#: most 0.10 of hit rate and come at most 0.03 further from the true edit (the judge's feature distance) than the
#: paper's recipe, each bound read from the paired difference's 95 % interval.
HIT_MARGIN = 0.10
DISTANCE_MARGIN = 0.03


def non_inferior(hit_diff: dict | None, distance_diff: dict | None) -> bool:
    """Whether an option is not worse than the paper's recipe: the lower end of its paired hit difference
    (option − paper) is at least −:data:`HIT_MARGIN` and the upper end of its paired difference of the distance to
    the true edit at most +:data:`DISTANCE_MARGIN`. ``*_diff``: ``{"mean", "ci": [lo, hi]}`` (None: not measured,
    not non-inferior). A difference whose interval excludes 0 can pass (slightly worse, within the margin); one that
    is better but too uncertain to exclude a loss beyond the margin does not."""
    if hit_diff is None or distance_diff is None:
        return False
    return hit_diff["ci"][0] >= -HIT_MARGIN and distance_diff["ci"][1] <= DISTANCE_MARGIN


def read_results(path: str | os.PathLike = BENCH_RESULTS) -> dict | None:
    """The recipe table's results (``bench/recipes.py``), or None when that file is not there (an installed
    package, or a checkout where ``make bench`` never ran)."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _ci(row: dict, key: str) -> str:
    lo, hi = row[f"{key}_ci"]
    return f"{row[key]:.2f} [{lo:.2f}, {hi:.2f}]"


def _diff(row: dict, key: str) -> str:
    d = row.get(key)
    return "–" if d is None else f"{d['mean']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]"


def recipe_study(results: dict | None) -> Study:
    """The recipe table as a notebook shows it: one row per recipe with learn and apply speed-ups, UNet calls,
    the edit's file size, hit / kept / distance to the true edit with intervals, the paired differences to the
    paper's recipe and whether it matches it. No results: one row saying how to measure them."""
    if results is None:
        return Study(rows=[{"recipe": "not measured here", "how": "run `make bench` (bench/recipes.py) in a checkout"}])
    rows = []
    for r in results["rows"]:
        rows.append({
            "recipe": r["recipe"], "learn s": r["learn_s"], "learn ×": r["learn_speedup"],
            "apply s/img": r["apply_s_per_image"], "apply ×": r["apply_speedup"],
            "UNet evaluations learn / apply per image": f"{r['learn_unet_evals']} / {r['apply_unet_evals_per_image']:.0f}",
            "file MB": round(r["file_bytes"] / 1e6, 2), "hit": _ci(r, "hit"), "kept": _ci(r, "kept"),
            "judge to true": _ci(r, "judge_to_true"), "Δhit": _diff(r, "hit_diff"),
            "Δjudge to true": _diff(r, "judge_to_true_diff"),
            "matches paper": "(reference)" if "hit_diff" not in r else
                             ("yes" if non_inferior(r["hit_diff"], r.get("judge_to_true_diff")) else "no"),
        })
    return Study(rows=rows, title=f"toy '{results['edit']}' edit: {results['runs']} fine-tunes × "
                                  f"{results['faces']} test faces per recipe")


def speed_quality_plot(results: dict | None, stamp_text: str = ""):
    """One row per recipe, three panels: hit with its 95 % interval (the toy target as a line), learn speed-up and
    apply speed-up over the paper's recipe (log scale). Green: the recipe matches the paper's; red: it does not.
    None without results."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from .judged_edits import TARGETS
    from .plots import ShownFigure, stamp

    if results is None:
        return None
    rows = results["rows"]
    names = [r["recipe"] for r in rows]
    colours = ["tab:blue" if "hit_diff" not in r else
               ("tab:green" if non_inferior(r["hit_diff"], r.get("judge_to_true_diff")) else "tab:red")
               for r in rows]
    y = list(range(len(rows)))[::-1]
    fig = ShownFigure(figsize=(10, 0.35 * len(rows) + 1.4))  # not pyplot: shown once, where the notebook shows it
    quality, learn, apply = fig.subplots(1, 3, sharey=True)
    for yi, r, c in zip(y, rows, colours):
        lo, hi = r["hit_ci"]
        quality.errorbar(r["hit"], yi, xerr=[[r["hit"] - lo], [hi - r["hit"]]], fmt="o", color=c, capsize=3)
    quality.axvline(TARGETS["hit"], color="gray", lw=0.8, ls="--")
    quality.set_xlim(-0.05, 1.05)
    quality.set_xlabel("hit (95 % interval)")
    quality.set_yticks(y, names, fontsize=8)
    for ax, key, label in ((learn, "learn_speedup", "learn ×"), (apply, "apply_speedup", "apply ×")):
        ax.barh(y, [r[key] for r in rows], color=colours)
        ax.axvline(1.0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.set_xlabel(f"{label} over the paper's recipe (log)")
        for yi, r in zip(y, rows):
            ax.text(r[key], yi, f" {r[key]:.1f}×", va="center", fontsize=7)
    fig.suptitle("what the later accelerations buy (blue: the paper's recipe; green: matches it; red: does not)",
                 fontsize=9)
    fig.tight_layout()
    if stamp_text:
        stamp(fig, stamp_text)
    return fig
