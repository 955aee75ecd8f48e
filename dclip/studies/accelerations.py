"""What the later accelerations of DiffusionCLIP buy (beyond the paper; issue 24): the recipe table that
``make bench`` measures (``bench/recipes.py``) as notebook 04 shows it, a table and a speed/quality plot.

The numbers are read from the benchmark's results file, not recomputed here: the table takes about half an hour
of CPU, which is the benchmark's job. Each row is a way to learn and apply the toy glasses edit (LoRA, the loss at
the first step, fewer inversion steps, batching, finishing generation early, fewer steps to apply, all of them),
with its speed-ups over the paper's recipe, its judged quality with 95 % intervals and its paired difference to
the paper's recipe. An option *matches* the paper's recipe when its hit meets the toy target and both difference
intervals contain 0.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .common import Study

__all__ = ["BENCH_RESULTS", "read_results", "recipe_study", "speed_quality_plot"]

#: Where ``make bench`` writes the recipe table in a source checkout.
BENCH_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results-recipes-cpu.json"


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
            "matches paper": "(reference)" if "matches_paper" not in r else ("yes" if r["matches_paper"] else "no"),
        })
    return Study(rows=rows, title=f"toy '{results['edit']}' edit: {results['runs']} fine-tunes × "
                                  f"{results['faces']} test faces per recipe")


def speed_quality_plot(results: dict | None, stamp_text: str = ""):
    """Learn speed-up (x, log) against hit with its 95 % interval (y), one point per recipe, the toy hit target
    as a line; apply speed-ups in the labels. None without results."""
    import matplotlib.pyplot as plt

    from .judged_edits import TARGETS
    from .plots import stamp

    if results is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results["rows"]:
        lo, hi = r["hit_ci"]
        ok = r.get("matches_paper", True)
        ax.errorbar(r["learn_speedup"], r["hit"], yerr=[[r["hit"] - lo], [hi - r["hit"]]], fmt="o" if ok else "x",
                    color="tab:green" if ok else "tab:red", capsize=3)
        ax.annotate(f"{r['recipe']} (apply {r['apply_speedup']:.1f}×)", (r["learn_speedup"], r["hit"]),
                    textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.axhline(TARGETS["hit"], color="gray", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("learn speed-up over the paper's recipe (×, log)")
    ax.set_ylabel("hit (95 % interval)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("what the later accelerations buy (green: matches the paper's recipe)", fontsize=9)
    fig.tight_layout()
    if stamp_text:
        stamp(fig, stamp_text)
    return fig
