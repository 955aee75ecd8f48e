"""The toy world on the command line.

* ``python -m dclip toy train {ddpm,ddpm-continue,clip,clip-directions,judge,gan,e4e,all} [--steps N]
  [--out DIR [--force]]``: (re)train the toy models into a user folder (``toy-models/`` in dclip's data folder;
  the shipped models' folder only with ``--force``); ``ddpm-continue``: continue the toy DDPM with min-SNR
  weighting (:mod:`dclip.toy.ddpm_training`), ``clip-directions``: continue the toy CLIP on true-edit directions
  (:mod:`dclip.toy.clip_directions`), each from ``--init``, else the folder's own model; ``gan``: the toy
  StyleGAN2 of the GAN baselines, ``e4e``: its encoder; every run continues a stopped run;
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


#: The toy models ``toy train`` knows, in the order ``all`` trains them (the GAN before its encoder).
MODELS = ("ddpm", "ddpm-continue", "clip", "clip-directions", "judge", "gan", "e4e")

#: The models whose trainer starts from a given file (``--init``).
TAKES_INIT = ("clip", "clip-directions", "ddpm-continue")

#: ``python -m dclip toy``'s examples (its help's epilog; tests/test_cli.py parses each one).
EXAMPLES = (
    "python -m dclip toy faces faces/ --n 8 --lacking angry",
    "python -m dclip toy train judge --steps 200 --out runs/toy-models",
    "python -m dclip toy train all --out dclip/models/shipped --force",
    "python -m dclip toy sheet",
)


def build_parser() -> argparse.ArgumentParser:
    """``python -m dclip toy``'s parser (imports no torch)."""
    from ..cli import HELP_HINT

    epilog = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES) + "\n\n" + HELP_HINT.replace(
        "dclip COMMAND", "dclip toy COMMAND")
    parser = argparse.ArgumentParser(prog="python -m dclip toy", description=__doc__.split("\n\n")[0],
                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("train", help="train one toy model (or all) and write it with its JSON sidecar",
                       epilog="examples:\n" + "\n".join(f"  {x}" for x in EXAMPLES if " train " in x),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=[*MODELS, "all"],
                   help="ddpm: the toy DDPM; ddpm-continue: the toy DDPM continued with min-SNR-5 weighting; clip: the "
                        "toy CLIP (contrastive); clip-directions: the toy CLIP continued on true-edit directions (not shipped yet); judge: the classifier that scores edits; gan: the "
                        "toy StyleGAN2 of the GAN baselines; e4e: its encoder (needs a gan); all: each in that order")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the model's settings)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for <name>.safetensors/.json (default: toy-models/ in dclip's data folder, "
                        "printed when it is written; read it back with --toy-models DIR or $DCLIP_TOY_MODELS)")
    p.add_argument("--force", action="store_true",
                   help="allow --out to be the shipped models' folder (dclip/models/shipped), replacing the models "
                        "every notebook and test uses")
    p.add_argument("--init", type=Path, default=None,
                   help="clip, clip-directions, ddpm-continue: continue from this toy CLIP or toy DDPM file (the "
                        "default of clip-directions and ddpm-continue: toy_clip / toy_ddpm in --out's folder)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show progress bars (default: on)")
    f = sub.add_parser("faces", help="write held-out toy faces as PNGs to a folder (images to edit with --model toy)",
                       epilog=f"example:\n  {EXAMPLES[0]}", formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("out", type=Path, help="folder to write the faces into (as NN.png, with faces.json)")
    f.add_argument("--n", type=int, default=8, help="how many faces (default: %(default)s)")
    f.add_argument("--split", default="test", choices=["test", "validation"],
                   help="test: the notebooks' test faces (held-out seeds, every other one without glasses); "
                        "validation: the faces settings are chosen on (default: %(default)s)")
    f.add_argument("--lacking", default=None, metavar="EDIT",
                   help="only faces that lack EDIT's target (e.g. angry: no frowning face), as the notebooks "
                        "judge an edit")
    q = sub.add_parser("sheet", help="draw the toy world figure (faces, reconstructions, samples) to figures/toy/",
                       epilog=f"example:\n  {EXAMPLES[-1]}", formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--out", type=Path, default=None, help="folder (default: the repository's figures/toy)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
    return _train(parser, args)


def _trainers() -> dict:
    from ..baselines import e4e_training, stylegan2_training
    from ..toy import clip_directions, ddpm_training, train
    from . import toy_gan

    return {"ddpm": (_ddpm, ddpm_training.DDPM_SETTINGS, "toy_ddpm"),
            "ddpm-continue": (_ddpm_continue, ddpm_training.DDPM_CONTINUE_SETTINGS, "toy_ddpm"),
            "clip": (train.train_clip, train.CLIP_SETTINGS, "toy_clip"),
            "clip-directions": (_clip_directions, clip_directions.DIRECTION_SETTINGS, "toy_clip"),
            "judge": (train.train_judge, train.JUDGE_SETTINGS, "toy_judge"),
            "gan": (toy_gan.train_gan, stylegan2_training.GAN_SETTINGS, toy_gan.GAN_NAME),
            "e4e": (toy_gan.train_e4e, e4e_training.E4E_SETTINGS, toy_gan.E4E_NAME)}


def _train(parser: argparse.ArgumentParser, args) -> int:
    """``toy train``: into a user folder by default; into the shipped models' folder only with ``--force``,
    saying what it replaced."""
    from ..models.folder import is_shipped_dir, user_models_dir
    from ..runtime.resume import resume_path

    out = Path(args.out).expanduser() if args.out is not None else user_models_dir()
    shipped = is_shipped_dir(out)
    if shipped and not args.force:
        parser.error(f"--out {args.out} is the shipped models' folder, which every notebook and test reads; "
                     "train into another folder (the default is a user folder), or add --force to replace them")
    trainers = _trainers()
    for name in (MODELS if args.model == "all" else [args.model]):
        fn, settings, file = trainers[name]
        if args.steps is not None:
            settings = replace(settings, steps=args.steps)
        extra = {"init": args.init} if args.init is not None and name in TAKES_INIT else {}
        replaced = (out / f"{file}.safetensors").is_file()
        if resume_path(out, file).is_file():
            print(f"{name}: continuing the stopped run saved in {resume_path(out, file)} (delete it to start over)")
        meta = fn(settings, out, progress=args.progress, **extra)
        print(f"{name}: {meta['steps_done']} steps, {meta['cpu_seconds']} s CPU, final {meta['history'][-1]}")
        if shipped and replaced:
            print(f"{name}: replaced the shipped {file}.safetensors and {file}.json in {out}")
        print(f"{name}: wrote {out / file}.safetensors" + ("" if shipped else
              f"; use it with --toy-models {out} (or DCLIP_TOY_MODELS={out})"))
    return 0


def _ddpm(settings, out: Path, *, progress: bool) -> dict:
    """``toy train ddpm``: :func:`dclip.toy.ddpm_training.train_ddpm` from random weights, then its bars
    (:func:`dclip.studies.toy_gan.ddpm_bars`) recorded in the sidecar."""
    from ..toy.ddpm_training import train_ddpm

    train_ddpm(settings, out, progress=progress)
    return record_ddpm_bars(out / "toy_ddpm")


def _ddpm_continue(settings, out: Path, *, progress: bool, init: Path | None = None) -> dict:
    """``toy train ddpm-continue``: the toy DDPM at ``init`` (default: the one in ``out``; ``toy train all`` trains
    it just before) continued with :data:`dclip.toy.ddpm_training.DDPM_CONTINUE_SETTINGS`, then its bars."""
    from ..toy.ddpm_training import train_ddpm

    train_ddpm(settings, out, init=Path(init or out / "toy_ddpm.safetensors"), progress=progress)
    return record_ddpm_bars(out / "toy_ddpm")


def record_ddpm_bars(path: Path) -> dict:
    """Measure the toy DDPM at ``path`` against the generators' bars on 512 samples (as the GAN's) and record them
    in its sidecar, with the machine it was trained on; returns the sidecar."""
    from ..studies.toy_gan import ddpm_bars
    from .toy_gan import record_in_sidecar

    return record_in_sidecar(path.with_suffix(".safetensors"), device=_device(), bars=ddpm_bars(folder=path.parent))


def _device() -> str:
    import platform

    import torch

    return f"cpu ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def _clip_directions(settings, out: Path, *, progress: bool, init: Path | None = None) -> dict:
    """``toy train clip-directions``: :func:`dclip.toy.clip_directions.train_clip_directions` from ``init``, else
    from the toy CLIP in ``out`` (``toy train all`` trains it just before)."""
    from ..toy.clip_directions import train_clip_directions

    train_clip_directions(Path(init or out / "toy_clip.safetensors"), settings, out, progress=progress)
    return record_ball_bars(out / "toy_clip")


def record_ball_bars(path: Path) -> dict:
    """Measure the CLIP at ``path`` against the ball on validation faces
    (:func:`dclip.studies.edit_failures.clip_against_the_ball`) and record it in its sidecar, with the machine it
    was trained on."""
    from ..models.clip import load_clip_file
    from ..studies.edit_failures import BARS, clip_against_the_ball
    from ..toy.judging import TOY_EDITS
    from .toy_gan import record_in_sidecar

    rows = clip_against_the_ball(load_clip_file(path.with_suffix(".safetensors")), TOY_EDITS)
    return record_in_sidecar(path.with_suffix(".safetensors"), device=_device(),
                             ball_bars_validation={"bars": {k: BARS[k] for k in ("attack_margin", "true_loss")},
                                                   "n": 32, "rows": rows, "cleared": sum(r["clears"] for r in rows)})


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
