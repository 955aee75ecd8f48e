"""``python -m dclip toy train {ddpm,clip,judge,all} [--steps N] [--out DIR]``: (re)train the toy models;
``python -m dclip toy sheet``: draw the toy world figure."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from ..models.folder import SHIPPED_DIR
    from ..toy import train

    trainers = {"ddpm": (train.train_ddpm, "DDPM_SETTINGS"), "clip": (train.train_clip, "CLIP_SETTINGS"),
                "judge": (train.train_judge, "JUDGE_SETTINGS")}
    parser = argparse.ArgumentParser(prog="python -m dclip toy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one toy model (or all) and write it with its JSON sidecar")
    p.add_argument("model", choices=[*trainers, "all"])
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the model's settings)")
    p.add_argument("--out", type=Path, default=SHIPPED_DIR, help="folder for <name>.safetensors/.json "
                   "(default: the shipped models' folder)")
    p.add_argument("--init", type=Path, default=None, help="clip only: continue from this toy CLIP file")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    q = sub.add_parser("sheet", help="draw the toy world figure (faces, reconstructions, samples) to figures/toy/")
    q.add_argument("--out", type=Path, default=None, help="folder (default: the repository's figures/toy)")
    args = parser.parse_args(argv)
    if args.command == "sheet":
        return _sheet(args.out)
    names = list(trainers) if args.model == "all" else [args.model]
    for name in names:
        fn, settings_name = trainers[name]
        settings = getattr(train, settings_name)
        if args.steps is not None:
            settings = replace(settings, steps=args.steps)
        extra = {"init": args.init} if args.init is not None and name == "clip" else {}
        meta = fn(settings, args.out, progress=args.progress, **extra)
        print(f"{name}: {meta['steps_done']} steps, {meta['cpu_seconds']} s CPU, final {meta['history'][-1]}")
    return 0


def _sheet(out: Path | None) -> int:
    from ..notebook.outputs import figures_dir, save_figure, save_table
    from ..notebook.profiles import get_profile
    from .toy_sheet import toy_world_figure

    folder = out or figures_dir(get_profile("toy"))
    fig, rows = toy_world_figure()
    path = save_figure(fig, folder, "00_toy_world")
    save_table(rows, folder, "00_toy_world")
    print(f"wrote {path}: {rows}")
    return 0

