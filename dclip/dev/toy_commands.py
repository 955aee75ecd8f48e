"""The toy world on the command line.

* ``python -m dclip toy train {ddpm,clip,judge,gan,e4e,all} [--steps N] [--out DIR]``: (re)train the toy models
  (``gan``: the toy StyleGAN2 of the GAN baselines, ``e4e``: its encoder; both continue a stopped run);
* ``python -m dclip toy faces OUT [--n N] [--split test|validation] [--lacking EDIT]``: write toy faces as PNGs,
  images to edit with ``python -m dclip edit --model toy``;
* ``python -m dclip toy sheet``: draw the toy world figure.

What ``--model toy`` means to ``python -m dclip precompute | finetune`` is :mod:`dclip.cli.toy`.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

__all__ = ["main", "write_faces"]


def main(argv: list[str] | None = None) -> int:
    from ..models.folder import SHIPPED_DIR
    from ..toy import train

    from ..baselines import e4e_training, stylegan2_training
    from . import toy_gan

    trainers = {"ddpm": (train.train_ddpm, train.DDPM_SETTINGS), "clip": (train.train_clip, train.CLIP_SETTINGS),
                "judge": (train.train_judge, train.JUDGE_SETTINGS),
                "gan": (toy_gan.train_gan, stylegan2_training.GAN_SETTINGS),
                "e4e": (toy_gan.train_e4e, e4e_training.E4E_SETTINGS)}
    parser = argparse.ArgumentParser(prog="python -m dclip toy", description=__doc__.split("\n\n")[0],
                                     epilog="python -m dclip toy COMMAND --help for each command's flags")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one toy model (or all) and write it with its JSON sidecar")
    p.add_argument("model", choices=[*trainers, "all"])
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the model's settings)")
    p.add_argument("--out", type=Path, default=SHIPPED_DIR, help="folder for <name>.safetensors/.json "
                   "(default: the shipped models' folder)")
    p.add_argument("--init", type=Path, default=None, help="clip only: continue from this toy CLIP file")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    f = sub.add_parser("faces", help="write held-out toy faces as PNGs to a folder (images to edit with --model toy)")
    f.add_argument("out", type=Path, help="folder to write the faces into (as NN.png, with faces.json)")
    f.add_argument("--n", type=int, default=8, help="how many faces (default: %(default)s)")
    f.add_argument("--split", default="test", choices=["test", "validation"],
                   help="test: the notebooks' test faces (held-out seeds, every other one without glasses); "
                        "validation: the faces settings are chosen on (default: %(default)s)")
    f.add_argument("--lacking", default=None, metavar="EDIT",
                   help="only faces that lack EDIT's target (e.g. angry: no frowning face), as the notebooks "
                        "judge an edit")
    q = sub.add_parser("sheet", help="draw the toy world figure (faces, reconstructions, samples) to figures/toy/")
    q.add_argument("--out", type=Path, default=None, help="folder (default: the repository's figures/toy)")
    args = parser.parse_args(argv)
    if args.command == "sheet":
        return _sheet(args.out)
    if args.command == "faces":
        if args.n < 1:
            parser.error("--n must be at least 1")
        paths = write_faces(args.out, args.n, args.split, args.lacking)
        print(f"wrote {len(paths)} toy faces ({args.split} split) to {args.out}, their attributes to "
              f"{args.out / 'faces.json'}")
        return 0
    names = list(trainers) if args.model == "all" else [args.model]
    for name in names:
        fn, settings = trainers[name]
        if args.steps is not None:
            settings = replace(settings, steps=args.steps)
        extra = {"init": args.init} if args.init is not None and name == "clip" else {}
        meta = fn(settings, args.out, progress=args.progress, **extra)
        print(f"{name}: {meta['steps_done']} steps, {meta['cpu_seconds']} s CPU, final {meta['history'][-1]}")
    return 0


def write_faces(out: Path, n: int, split: str = "test", lacking: str | None = None) -> list[Path]:
    """Write ``n`` held-out toy faces to ``out`` as ``00.png``, ``01.png``, ... (32 px) and their true attributes
    to ``out/faces.json``: the notebooks' test faces (:func:`dclip.toy.domain.evaluation_set`), the validation
    faces, or with ``lacking`` the faces of that split an edit towards it is judged on
    (:func:`dclip.toy.judging.lacking_faces`)."""
    from ..data.images import save_image
    from ..runtime.atomic import atomic_write
    from ..toy.domain import HELD_OUT_SEED, VALIDATION_SEED, evaluation_set, face_set
    from ..toy.judging import lacking_faces

    start = {"test": HELD_OUT_SEED, "validation": VALIDATION_SEED}[split]
    if lacking:
        images, records = lacking_faces(lacking, n, start)
    else:
        images, records = evaluation_set(n) if split == "test" else face_set(start, n)
    out.mkdir(parents=True, exist_ok=True)
    paths = [save_image(images[i: i + 1], out / f"{i:02d}.png") for i in range(len(images))]
    rows = {p.name: record.attributes() for p, record in zip(paths, records)}
    atomic_write(out / "faces.json", lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1) + "\n"))
    return paths


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
