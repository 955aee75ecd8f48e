"""Command line: ``python -m dclip precompute | finetune | edit | cache`` for batch runs without Jupyter.

Examples (the tiny preset and tiny CLIP run on any CPU in seconds; drop them for the paper's models):

    python -m dclip finetune --model tiny --clip tiny --attribute makeup --n-images 2 --out runs/makeup
    python -m dclip edit --model tiny --finetuned runs/makeup.safetensors --image photo.jpg --out edited.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

__all__ = ["main", "build_parser"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="celeba_hq",
                   help="pretrained diffusion model: a preset (celeba_hq, lsun_church, lsun_bedroom, afhq_dog, "
                        "tiny), a checkpoint file, a diffusers folder or a Hub id (default: %(default)s)")
    p.add_argument("--model-config", default=None,
                   help="architecture preset for a checkpoint file whose layout is ambiguous (default: inferred)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: %(default)s)")
    p.add_argument("--t0", type=int, default=None,
                   help="return step t0 in [1, 999]; default: the attribute's (finetune) or the one the "
                        "model was trained at (edit), else 400")
    p.add_argument("--n-inv", type=int, default=40, help="S_inv, DDIM inversion steps (default: %(default)s)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show progress bars (default: on)")


def _add_images(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", default=None,
                   help="folder of training images; default: photos that ship with matplotlib/scikit-image")
    p.add_argument("--n-images", type=int, default=50, help="at most this many images (default: %(default)s)")
    p.add_argument("--align", action="store_true", help="align faces with MTCNN into the CelebA-HQ framing first")


def _add_finetune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attribute", default=None, help="attribute preset (e.g. makeup, tanned, pixar, church_golden)")
    p.add_argument("--source", default=None, help="source text (overrides the attribute's), e.g. 'face'")
    p.add_argument("--target", default=None, help="target text (overrides the attribute's), e.g. 'angry face'")
    p.add_argument("--recipe", default="paper", choices=["paper", "authors_readme"],
                   help="hyper-parameter recipe: the paper's (lr 1e-6, x1.2 per 50 updates) or the authors' "
                        "README (lr 8e-6, x1.3 per epoch, 5 epochs) (default: %(default)s)")
    p.add_argument("--mode", default="full", choices=["full", "efficient"],
                   help="full: backprop through all S_gen steps; efficient: a step per DDIM step (default: full)")
    p.add_argument("--n-gen", type=int, default=None, help="S_gen during training (recipe default 6)")
    p.add_argument("--n-iter", type=int, default=None, help="passes over the training images (recipe default)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (recipe default)")
    p.add_argument("--lambda-clip", type=float, default=None, help="weight of the CLIP term (recipe default)")
    p.add_argument("--lambda-l1", type=float, default=None, help="weight of the L1 term (recipe default)")
    p.add_argument("--lambda-id", type=float, default=None,
                   help="weight of the face identity term (default: 0.1 for in-domain face attributes, else 0)")
    p.add_argument("--batch-size", type=int, default=1, help="images per update (default: %(default)s)")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations to save memory")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CUDA")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--clip", default="ViT-B-16-quickgelu",
                   help="open_clip model name, or 'tiny' for random weights (default: %(default)s)")
    p.add_argument("--clip-weights", default=None, help="local CLIP weight file (offline use)")
    p.add_argument("--face-weights", default=None, help="local facenet VGGFace2 weight file (offline use)")
    p.add_argument("--cache", default=None, help="latent cache folder (default: the latents/ folder of dclip's "
                   "disk cache, see `python -m dclip cache`)")
    p.add_argument("--out", required=True, help="output path; writes OUT.safetensors and OUT.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dclip", description="DiffusionCLIP from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("precompute", help="invert training images to t0 and cache the latents")
    _add_common(pre)
    _add_images(pre)
    pre.add_argument("--cache", default=None, help="latent cache folder (default: the latents/ folder of dclip's "
                     "disk cache, see `python -m dclip cache`)")
    pre.add_argument("--out", default=None, help="also write a grid original | reconstruction to this PNG")
    fin = sub.add_parser("finetune", help="fine-tune the model with the directional CLIP loss")
    _add_common(fin)
    _add_images(fin)
    _add_finetune(fin)
    ed = sub.add_parser("edit", help="edit an image with a fine-tuned model")
    _add_common(ed)
    ed.add_argument("--finetuned", required=True, nargs="+",
                    help="fine-tuned model file(s); several with --gammas mix them (eq. 14)")
    ed.add_argument("--image", required=True, help="image file to edit")
    ed.add_argument("--align", action="store_true", help="align the face with MTCNN first")
    ed.add_argument("--n-gen", type=int, default=40, help="S_gen, generation steps (default: %(default)s)")
    ed.add_argument("--ratio", type=float, default=1.0, help="degree of change r in [0, 1] (default: 1)")
    ed.add_argument("--gammas", default=None,
                    help="γ(t) schedule for several models, e.g. '300:1,0;0:0.3,0.7'")
    ed.add_argument("--out", required=True, help="output image path (PNG)")
    cache = sub.add_parser("cache", help="list or clear dclip's disk cache (latents and fine-tuned models)")
    cache.add_argument("action", nargs="?", default="list", choices=["list", "clear"],
                       help="list: location, entries and sizes; clear: remove every entry (default: list)")
    return parser


def _parse_gammas(text: str) -> dict[int, list[float]]:
    try:
        return {int(k): [float(w) for w in v.split(",")] for k, v in (part.split(":") for part in text.split(";"))}
    except ValueError:
        raise ValueError(f"--gammas '{text}' is not of the form 'THRESHOLD:W1,W2;THRESHOLD:W1,W2'.") from None


def _image_size(model) -> int:
    return int(model.config.sample_size)


def _load_images(args, size: int) -> torch.Tensor:
    from .images import image_files, load_folder, sample_photos

    if args.align:
        if not args.images:
            raise ValueError("--align needs --images pointing at a folder of photos.")
        return torch.cat([_aligned(f, size) for f in image_files(args.images)[: args.n_images]])
    if args.images:
        return load_folder(args.images, size, args.n_images)
    return sample_photos(size=size)[: args.n_images]


def _aligned(path, size: int) -> torch.Tensor:
    """A photo, FFHQ-aligned with MTCNN into the CelebA-HQ framing, as a (1, 3, size, size) tensor."""
    from PIL import Image

    from .faces import align_face
    from .images import to_tensor

    with Image.open(path) as image:
        return to_tensor(align_face(image), size)


def _load_model(args):
    from .loading import load_unet

    return load_unet(args.model, config=args.model_config).to(args.device)


def _latents_cache(args) -> Path:
    """``--cache``, else the disk cache's latents folder (kept within its size limit afterwards)."""
    from .cache import section

    return Path(args.cache) if args.cache else section("latents")


def _bound_cache(args) -> None:
    if not args.cache:
        from .cache import enforce_limit

        enforce_limit()


def _precompute(args) -> None:
    from .latents import precompute

    model = _load_model(args)
    t0 = args.t0 or 400
    images = _load_images(args, _image_size(model))
    latents = precompute(model, images, t0, args.n_inv, cache_dir=_latents_cache(args), progress=args.progress)
    _bound_cache(args)
    err = (latents.x_rec - latents.x0).abs().mean().item()
    print(f"{len(latents)} images inverted to t0={t0} with S_inv={args.n_inv}; reconstruction MAE {err:.4f}")
    if args.out:
        from .images import save_image

        grid = torch.cat([torch.cat(list(latents.x0), 2), torch.cat(list(latents.x_rec), 2)], 1)
        print(f"wrote {save_image(grid, args.out)}")


def _finetune_config(args):
    from .attributes import attribute
    from .finetune import RECIPES, recipe

    preset = attribute(args.attribute) if args.attribute else None
    source = args.source or (preset.source if preset else None)
    target = args.target or (preset.target if preset else None)
    if not source or not target:
        raise ValueError("give --attribute NAME, or both --source and --target texts.")
    overrides = {k: v for k, v in dict(t0=args.t0 or (preset.t0 if preset else 400), n_gen=args.n_gen,
                                       n_iter=args.n_iter, lr=args.lr, lambda_clip=args.lambda_clip,
                                       lambda_l1=args.lambda_l1, lambda_id=args.lambda_id).items() if v is not None}
    # the paper's λ_ID = 0.1 for in-domain face edits, unless the recipe sets its own (authors_readme: 0)
    if "lambda_id" not in overrides and "lambda_id" not in RECIPES[args.recipe] and preset is not None and preset.use_id:
        overrides["lambda_id"] = 0.1
    return recipe(args.recipe, source, target, mode=args.mode, batch_size=args.batch_size, bf16=args.bf16,
                  grad_checkpointing=args.grad_checkpointing, seed=args.seed, **overrides)


def _finetune(args) -> None:
    from .clip_loss import load_clip, tiny_clip
    from .finetune import finetune, save_finetuned
    from .latents import precompute

    config = _finetune_config(args)
    model = _load_model(args)
    clip = tiny_clip(device=args.device) if args.clip == "tiny" else load_clip(args.clip, device=args.device,
                                                                               weights=args.clip_weights)
    face_model = None
    if config.lambda_id > 0:
        from .faces import load_face_model

        face_model = load_face_model(device=args.device, weights=args.face_weights)
    images = _load_images(args, _image_size(model))
    latents = precompute(model, images, config.t0, args.n_inv, cache_dir=_latents_cache(args),
                         progress=args.progress)
    _bound_cache(args)
    result = finetune(model, latents, clip, config, face_model=face_model, progress=args.progress)
    path = save_finetuned(result, args.out, base=args.model)
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    print(f"'{config.source}' -> '{config.target}': {len(result.history)} updates, loss {first:.4f} -> {last:.4f}")
    print(f"wrote {path} and {path.with_suffix('.json')}")


def _trained_t0(path: str) -> int:
    """The t0 a dclip fine-tune was trained at (its JSON sidecar), else 400."""
    sidecar = Path(path).with_suffix(".json")
    if sidecar.is_file():
        return int(json.loads(sidecar.read_text()).get("hyperparameters", {}).get("t0", 400))
    return 400


def _edit(args) -> None:
    from .edit import edit, edit_multi
    from .finetune import load_finetuned
    from .images import load_image, save_image

    original = _load_model(args)
    models = [load_finetuned(p, base=original) for p in args.finetuned]
    size = _image_size(original)
    x0 = (_aligned(args.image, size) if args.align else load_image(args.image, size)).to(args.device)
    t0 = args.t0 or _trained_t0(args.finetuned[0])
    if len(models) > 1 or args.gammas:
        if not args.gammas:
            raise ValueError("several --finetuned models need --gammas, e.g. '300:1,0;0:0.3,0.7'.")
        x = edit_multi(original, models, x0, t0, _parse_gammas(args.gammas), n_inv=args.n_inv, n_gen=args.n_gen,
                       progress=args.progress)
    else:
        x = edit(original, models[0], x0, t0, n_inv=args.n_inv, n_gen=args.n_gen, ratio=args.ratio,
                 progress=args.progress)
    print(f"wrote {save_image(torch.cat([x0, x], 3), args.out)} (original | edited)")


def _cache(action: str) -> None:
    from .cache import main as cache_main

    cache_main(action)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"precompute": _precompute, "finetune": _finetune, "edit": _edit,
               "cache": lambda a: _cache(a.action)}[args.command]
    try:
        command(args)
    except (ValueError, FileNotFoundError) as err:  # WeightsNotFoundError is a FileNotFoundError
        print(f"dclip {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
