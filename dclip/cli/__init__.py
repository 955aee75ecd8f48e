"""Command line: ``python -m dclip precompute | finetune | edit | cache`` for batch runs without Jupyter, and the
one entry of the developer tools (``figures | toy | portability``, :data:`TOOLS`).

Examples (the toy world's models run on any CPU in about a minute; drop --model toy for the paper's models):

    python -m dclip toy faces faces/ --n 8 --lacking angry
    python -m dclip finetune --model toy --attribute angry --out runs/angry
    python -m dclip edit --model toy --finetuned runs/angry.safetensors --images faces/ --out edits/angry

The same commands run under ``torchrun --nproc-per-node N -m dclip ...`` (see :mod:`dclip.runtime.distributed`):
precompute and edit of a folder split its images over the ranks (each rank writes the files of its
own images; a re-run skips what is done), finetune with one attribute trains data-parallel
(``--batch-size`` per rank) and finetune with several attributes trains one per rank at a time.

This module reads the command line; :mod:`dclip.cli.commands` runs the commands; :mod:`dclip.cli.toy` is what
``--model toy`` sets where no flag does.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..version import __version__

__all__ = ["main", "build_parser", "examples", "HELP_HINT"]

#: The last line of the top-level help.
HELP_HINT = "python -m dclip COMMAND --help: each command's flags and examples"

#: Each command's examples (from the README and docs/cli.md), shown as its help's epilog. A test parses every
#: one of them (tests/test_cli.py), so they stay real command lines.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("python -m dclip toy faces faces/ --n 8 --lacking glasses",
         "python -m dclip finetune --model toy --attribute glasses --out runs/glasses",
         "python -m dclip edit --model toy --finetuned runs/glasses.safetensors --images faces/ --out edits/glasses"),
    "precompute": ("python -m dclip precompute --model toy --n-images 8 --out runs/toy_reconstructions.png",
                   "python -m dclip precompute --model celeba_hq --images data/celeba_test --t0 400"),
    "finetune": ("python -m dclip finetune --model toy --attribute angry --out runs/angry",
                 "python -m dclip finetune --model toy --attribute glasses --adapter lora --out runs/glasses_lora",
                 "python -m dclip finetune --model celeba_hq --attribute makeup --images data/celeba_test "
                 "--n-images 50 --recipe authors_readme --out runs/makeup"),
    "edit": ("python -m dclip edit --model toy --finetuned runs/angry.safetensors --images faces/ --out edits/angry",
             "python -m dclip edit --model celeba_hq --finetuned runs/makeup.safetensors --image me.jpg --align "
             "--t0 301 --out me_makeup.png",
             "python -m dclip edit --from-png figures/toy/edits/edit-001.png --out again.png"),
    "cache": ("python -m dclip cache", "python -m dclip cache clear"),
}


def examples(command: str) -> str:
    """The epilog of ``command``'s help (``""``: the top level): its examples, one per line."""
    lines = "\n".join(f"  {line}" for line in EXAMPLES[command])
    return f"examples:\n{lines}" + (f"\n\n{HELP_HINT}" if command == "" else "")


def _subcommand(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=examples(name),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="celeba_hq",
                   help="pretrained diffusion model: a preset (celeba_hq, lsun_church, lsun_bedroom, afhq_dog; "
                        "tiny: random weights; toy: the toy world's DDPM on 32 px cartoon faces, shipped with dclip, "
                        "for the CPU), a checkpoint file, a diffusers folder or a Hub id (default: %(default)s)")
    p.add_argument("--model-config", default=None,
                   help="architecture preset for a checkpoint file whose layout is ambiguous (default: inferred)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--toy-models", default=None, metavar="DIR",
                   help="read the toy models (--model toy, --clip toy) from DIR, a folder `python -m dclip toy "
                        "train` wrote; models DIR lacks come from the shipped ones (default: $DCLIP_TOY_MODELS, "
                        "else the shipped models)")
    p.add_argument("--n-inv", type=int, default=40, help="S_inv, DDIM inversion steps (default: %(default)s)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show progress bars (default: on)")


def _add_precision(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--bf16", action="store_true",
                       help="bfloat16 autocast of the UNet calls (already the default on CUDA and on CPUs with native "
                            "bf16, AVX-512 BF16 or AMX; elsewhere emulated and slower than fp32)")
    which.add_argument("--fp32", action="store_true",
                       help="plain fp32 UNet calls on the CPU, also where it has native bf16 (inversion is fp32 always)")


def _add_t0(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--t0", type=int, default=None, help=f"return step t0 in [1, 999] (default: {default})")


def _add_images(p: argparse.ArgumentParser) -> None:
    from .toy import toy_profile

    p.add_argument("--images", default=None, help="folder of training images; default: photos that ship with "
                   "matplotlib/scikit-image (with --model toy: training-seed toy faces)")
    p.add_argument("--n-images", type=int, default=None,
                   help=f"at most this many images (default: 50; {toy_profile().n_train} with --model toy)")
    p.add_argument("--align", action="store_true", help="align faces with MTCNN into the CelebA-HQ framing first")


def _add_finetune(p: argparse.ArgumentParser) -> None:
    from ..method.recipes import PAPER_LAMBDA_ID, RECIPES
    from .toy import toy_profile

    toy, paper, readme = toy_profile(), RECIPES["paper"], RECIPES["authors_readme"]
    p.add_argument("--attribute", default=None, nargs="+",
                   help="attribute preset (e.g. makeup, tanned, pixar, church_golden); several fine-tune one model "
                        "each (spread over the ranks under torchrun)")
    p.add_argument("--source", default=None, help="source text (overrides the attribute's), e.g. 'face'")
    p.add_argument("--target", default=None, help="target text (overrides the attribute's), e.g. 'angry face'")
    p.add_argument("--recipe", default=None, choices=["paper", "authors_readme"],
                   help=f"hyper-parameter recipe: the paper's (lr {paper['lr']:g}, x{paper['lr_gamma']:g} per "
                        f"{paper['lr_step']} updates) or the authors' README (lr {readme['lr']:g}, "
                        f"x{readme['lr_gamma']:g} per epoch, {readme['n_iter']} epochs) (default: paper; with "
                        f"--model toy the toy profile's: the paper's with lr {toy.lr:g}, {toy.n_iter} passes, "
                        f"S_gen {toy.n_gen_train})")
    p.add_argument("--mode", default="full", choices=["full", "efficient"],
                   help="full: backprop through all S_gen steps; efficient: a step per DDIM step (default: full)")
    p.add_argument("--n-gen", type=int, default=None,
                   help=f"S_gen during training (default: {toy.n_gen_train} at --model toy, {paper['n_gen']} for "
                        "the paper recipe)")
    p.add_argument("--n-iter", type=int, default=None,
                   help=f"passes over the training images (default: {toy.n_iter} at --model toy, {paper['n_iter']} "
                        f"for the paper recipe, {readme['n_iter']} for authors_readme)")
    p.add_argument("--lr", type=float, default=None,
                   help=f"initial learning rate (default: {toy.lr:g} at --model toy, {toy.lora_lr:g} with "
                        f"--adapter lora there; {paper['lr']:g} for the paper recipe, {readme['lr']:g} for "
                        "authors_readme)")
    p.add_argument("--lambda-clip", type=float, default=None,
                   help=f"weight of the CLIP term (default: {paper['lambda_clip']:g}; {readme['lambda_clip']:g} for "
                        "authors_readme)")
    p.add_argument("--lambda-l1", type=float, default=None,
                   help=f"weight of the L1 term (default: {paper['lambda_l1']:g}; {readme['lambda_l1']:g} for "
                        "authors_readme; 0 for attributes that turn it off)")
    p.add_argument("--lambda-id", type=float, default=None,
                   help=f"weight of the face identity term (default: {PAPER_LAMBDA_ID:g} for in-domain face "
                        "attributes, else 0; 0 with --model toy)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="images per update, per rank under torchrun (default: %(default)s)")
    p.add_argument("--adapter", default="none", choices=["none", "lora"],
                   help="none: train every weight (the paper); lora: train a low-rank adapter and write only it "
                        "(a small file; edit applies it to --model) (default: %(default)s)")
    p.add_argument("--rank", type=int, default=4, help="LoRA rank with --adapter lora (default: %(default)s)")
    p.add_argument("--loss-at", default="chain_end", choices=["chain_end", "first_step"],
                   help="chain_end: the loss on the image after the S_gen chain (the paper); first_step: on x̂0 "
                        "predicted at t0 in one UNet call (Eff-Diff; S_gen times less work) (default: %(default)s)")
    p.add_argument("--grad-checkpointing", action="store_true",
                   help="recompute activations to save memory (full mode; a fast-path setting)")
    _add_precision(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse an identical earlier fine-tune (same base weights, images and settings) from dclip's "
                        "disk cache, and keep this one there (one process per fine-tune; not data-parallel)")
    p.add_argument("--clip", default=None,
                   help="open_clip model name, 'toy' (the toy world's CLIP) or 'tiny' (random weights) "
                        "(default: toy with --model toy, else ViT-B-16-quickgelu)")
    p.add_argument("--clip-weights", default=None, help="local CLIP weight file (offline use)")
    p.add_argument("--face-weights", default=None, help="local facenet VGGFace2 weight file (offline use)")
    p.add_argument("--arcface-weights", default=None,
                   help="local ArcFace IR-SE50 file (model_ir_se50.pth), the authors' identity network; without "
                        "it ArcFace is used when that file is in $DCLIP_WEIGHTS, else facenet VGGFace2")
    p.add_argument("--cache", default=None, help="latent cache folder (default: the latents/ folder of dclip's "
                   "disk cache, see `python -m dclip cache`)")
    p.add_argument("--out", required=True,
                   help="where the model goes: OUT.safetensors with its OUT.json sidecar for one attribute, "
                        "OUT/ATTRIBUTE.safetensors (and .json) for each of several")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; building it (and printing any help) imports no torch."""
    parser = argparse.ArgumentParser(prog="python -m dclip", description="DiffusionCLIP from the command line.",
                                     epilog=examples(""), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"dclip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pre = _subcommand(sub, "precompute", "invert training images to t0 and cache the latents")
    _add_common(pre)
    _add_t0(pre, "400")
    _add_images(pre)
    pre.add_argument("--cache", default=None, help="latent cache folder (default: the latents/ folder of dclip's "
                     "disk cache, see `python -m dclip cache`)")
    pre.add_argument("--batch-size", type=int, default=None, help="images per UNet call (default: 8)")
    pre.add_argument("--out", default=None, help="also write a grid original | reconstruction to this PNG")
    fin = _subcommand(sub, "finetune", "fine-tune the model with the directional CLIP loss")
    _add_common(fin)
    _add_t0(fin, "the attribute's; 400 for --source/--target without one")
    _add_images(fin)
    _add_finetune(fin)
    ed = _subcommand(sub, "edit", "edit an image with a fine-tuned model")
    _add_common(ed)
    _add_t0(ed, "the t0 the first --finetuned model was trained at, else 400")
    ed.add_argument("--finetuned", nargs="+",
                    help="fine-tuned model file(s); several with --gammas mix them (eq. 14); not with --from-png")
    which = ed.add_mutually_exclusive_group(required=True)
    which.add_argument("--image", help="image file to edit")
    which.add_argument("--images", help="folder of images to edit: writes OUT/NAME.png per image (edited only), "
                                         "skipping those already there")
    which.add_argument("--from-png", help="redo the edit the live editor (notebook 06) saved in this PNG: its "
                                          "settings name the model files it needs")
    ed.add_argument("--n-images", type=int, default=None, help="with --images: the first this many (default: all)")
    ed.add_argument("--batch-size", type=int, default=8,
                    help="with --images: images per UNet call (default: %(default)s)")
    ed.add_argument("--align", action="store_true", help="align the face with MTCNN first")
    ed.add_argument("--n-gen", type=int, default=40, help="S_gen, generation steps (default: %(default)s)")
    _add_precision(ed)
    ed.add_argument("--ratio", type=float, default=1.0, help="degree of change r in [0, 1] (default: 1)")
    ed.add_argument("--finish-at", type=int, default=None,
                    help="end generation at the first step with t ≤ this and take its x̂0 (skips the rest; "
                         "default: the whole reverse process, as the paper)")
    ed.add_argument("--gammas", default=None,
                    help="γ(t) schedule for several models, e.g. '300:1,0;0:0.3,0.7'")
    ed.add_argument("--out", required=True, help="output image path (PNG); a folder with --images")
    cache = _subcommand(sub, "cache", "list or clear dclip's disk cache (latents and fine-tuned models)")
    cache.add_argument("action", nargs="?", default="list", choices=["list", "clear"],
                       help="list: location, entries and sizes; clear: remove every entry (default: list)")
    for name, (_, text) in TOOLS.items():  # listed here; main() hands the rest of the line to the tool's parser
        sub.add_parser(name, help=text, add_help=False)
    return parser


#: The developer tools: name -> (module of dclip.dev with a ``main(argv)``, help line).
TOOLS = {
    "figures": ("figures", "re-run every notebook with papermill and rewrite figures/ (make figures)"),
    "toy": ("toy_commands", "retrain the toy models (into your own folder), write toy faces to edit, draw the "
                            "toy world sheet"),
    "portability": ("portability", "the checked notebook numbers and make test under simulated CPUs "
                                   "(make notebook-spread)"),
}


def _tool(name: str, argv: list[str]) -> int:
    import importlib

    return importlib.import_module(f"dclip.dev.{TOOLS[name][0]}").main(argv)


def _parse(argv: list[str]) -> argparse.Namespace:
    """The command line, with the flags left unset whose default depends on ``--model`` filled in."""
    from .toy import preset as toy_preset

    args = build_parser().parse_args(argv)
    preset = toy_preset(args) if args.command in ("precompute", "finetune") else {}
    if args.command in ("precompute", "finetune") and args.n_images is None:
        args.n_images = preset.get("n_images", 50)
    if args.command == "finetune" and args.clip is None:
        args.clip = preset.get("clip", "ViT-B-16-quickgelu")
    return args


@contextlib.contextmanager
def _toy_models(args):
    """``--toy-models DIR``: every toy model loader reads DIR (:func:`dclip.models.folder.toy_models_dir`) while
    the command runs; the environment is restored afterwards, so an in-process caller keeps its own."""
    from ..models.folder import TOY_MODELS_ENV, toy_models_dir
    from ..runtime.environment import environment

    folder = getattr(args, "toy_models", None)
    if not folder:
        yield
        return
    with environment(**{TOY_MODELS_ENV: str(folder)}):
        toy_models_dir()  # a folder that is not there is a one-line error now, not at the first load
        yield


def _written(args):
    """Nothing written yet to where the command writes: the latents cache, OUT.safetensors (one fine-tune), OUT."""
    from ..runtime.errors import Written

    one = args.command == "finetune" and not (args.attribute and len(args.attribute) > 1)
    out = (args.cache or "dclip's latents cache") if args.command == "precompute" else args.out
    return Written(str(Path(out).with_suffix(".safetensors")) if one else out)


def _rank_tag() -> str:
    """``[rank N] `` under torchrun, else empty; safe before the runtime is imported (a Ctrl-C during imports)."""
    distributed = sys.modules.get("dclip.runtime.distributed")
    return distributed.rank_tag() if distributed is not None else ""


def main(argv: list[str] | None = None) -> int:
    """Run one command; under torchrun (``WORLD_SIZE`` > 1) inside a process group, on this rank's device.
    A user error (a bad value; a missing or broken file: :class:`dclip.runtime.errors.UnreadableFileError`)
    prints one line naming the rank and returns 2: torchrun then stops the other ranks and the job fails.
    Ctrl-C prints one line saying what was written and returns 130; no partial file is left behind."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TOOLS:  # the tool's own parser reads the rest, --help included
        return _tool(argv[0], argv[1:])
    args = _parse(argv)
    if args.command == "cache":  # no model, no device, no process group
        from ..runtime.cache import main as cache_main

        cache_main(args.action)
        return 0
    args.done = _written(args)
    try:  # the imports too: a Ctrl-C while torch loads (seconds) is the same one line
        from ..runtime import distributed
        from . import commands

        command = {"precompute": commands._precompute, "finetune": commands._finetune,
                   "edit": commands._edit}[args.command]
        args.device = str(distributed.rank_device(args.device or commands.default_device()))
        with _toy_models(args), distributed.process_group(args.device):
            command(args)
    except KeyboardInterrupt:
        print(f"{_rank_tag()}dclip {args.command}: {args.done.interrupted()}", file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:  # UnreadableFileError is a ValueError; WeightsNotFoundError an OSError
        print(f"{_rank_tag()}dclip {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0
