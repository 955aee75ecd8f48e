#!/usr/bin/env python
"""The live editor's timings at the toy profile (issue 25; the third section of ``make bench``): what a user of
notebook 06 waits for on a CPU. Driven through :class:`dclip.editor.editor.Editor`, the state the widgets call,
so no browser is needed.

* a fine-tune on the toy profile's 8 training faces (the paper's recipe at the toy profile: 48 updates), target:
  under a minute;
* after the degree-of-change slider moves (the latent is cached): the preview shown at once
  (:meth:`~dclip.editor.editor.Editor.preview`, PREVIEW_STEPS generation steps), target ≤ 0.3 s, and the full
  re-render (S_gen 40), target ≤ 1 s; after t0 moves (a new inversion as well): the preview (a PREVIEW_STEPS-step
  inversion, then as many generation steps) and the full re-render.

Medians of ``--repeats`` runs. Writes bench/results-editor-cpu.json (``--out``) and prints a Markdown table.

    python bench/editor.py --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {"fine-tune on 8 faces": 60.0, "preview after r moves": 0.3, "re-render after r moves": 1.0,
           "preview after t0 moves": 0.3}


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(repeats: int) -> list[dict]:
    from dclip.notebook.context import Context
    from dclip.editor.editor import Editor

    def fresh() -> Editor:  # a new session: nothing fine-tuned or inverted yet
        editor = Editor(Context.create("toy"), t0=201)
        editor.load_sample(editor.sample_names()[0])
        editor.latent()  # the first inversion, not a slider move
        return editor

    rows, finetunes = [], []
    for _ in range(repeats):
        editor = fresh()
        finetunes.append(seconds(lambda: editor.train("face", "tanned face", 201)))
    rows.append({"action": "fine-tune on 8 faces", "seconds": statistics.median(finetunes)})
    editor.add(editor.train("face", "tanned face", 201))  # the session has it: no training
    previews, renders = [], []
    for i in range(repeats):  # interleaved: what a slider move does, the preview first
        editor.ratio = 0.3 + 0.1 * i  # what the r slider does
        previews.append(seconds(editor.preview))
        renders.append(seconds(editor.render))
    rows.append({"action": "preview after r moves", "seconds": statistics.median(previews)})
    rows.append({"action": "re-render after r moves", "seconds": statistics.median(renders)})
    t0_previews, moves = [], []
    for i in range(repeats):
        editor.t0 = 221 + 20 * i  # what the t0 slider does: a new inversion, then the render
        t0_previews.append(seconds(editor.preview))
        moves.append(seconds(editor.render))
    rows.append({"action": "preview after t0 moves", "seconds": statistics.median(t0_previews)})
    rows.append({"action": "re-render after t0 moves", "seconds": statistics.median(moves)})
    for row in rows:
        target = TARGETS.get(row["action"])
        row["target_s"] = target
        row["meets"] = None if target is None else row["seconds"] <= target
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results-editor-cpu.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("DCLIP_PROGRESS", "0")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure(args.repeats)
    Path(args.out).write_text(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__,
                                          "rows": rows}, indent=1))
    print("| action | seconds (median) | target | meets |\n|---|---|---|---|")
    for r in rows:
        target = "–" if r["target_s"] is None else f"≤ {r['target_s']:g} s"
        meets = "–" if r["meets"] is None else ("yes" if r["meets"] else "**no**")
        print(f"| {r['action']} | {r['seconds']:.2f} | {target} | {meets} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
