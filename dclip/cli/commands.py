"""What ``python -m dclip precompute | finetune | edit`` do, once :mod:`dclip.cli` has read the command line.

Under ``torchrun`` (:mod:`dclip.runtime.distributed`) precompute and edit of a folder split its images over the
ranks, finetune with one attribute trains data-parallel and finetune with several trains one per rank at a time.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch

from ..runtime import distributed


def _image_items(args, size: int) -> list[tuple[str, functools.partial]]:
    """(name, loader) of each input image, in a fixed order that every rank agrees on: the folder's
    files sorted by name (the first ``--n-images``), else training-seed toy faces (``--model toy``) or the
    shipped sample photos. Loading is left to the caller, so that each rank reads only its own images."""
    from ..data.images import image_files, sample_photo, to_tensor

    if args.align and not args.images:
        raise ValueError("--align needs --images pointing at a folder of photos.")
    if args.images:
        files = image_files(args.images)[: args.n_images]
        return [(f.stem, functools.partial(_read, f, size, args.align)) for f in files]
    if args.model == "toy":
        from .toy import training_faces

        return training_faces(args.n_images)
    names = ("grace_hopper", "astronaut")[: args.n_images]
    return [(n, functools.partial(lambda n: to_tensor(sample_photo(n), size), n)) for n in names]


def _load(items, indices, size: int, args) -> tuple[torch.Tensor, list[int]]:
    """The images ``items[i]`` for ``indices`` that can be read, as one (N, 3, size, size) tensor (N may be
    0), and their indices; an unreadable file is skipped with one warning line (the error line's prefix)."""
    from ..data.images import load_each

    prefix = f"{distributed.rank_tag()}dclip {args.command}: "
    images, kept = load_each([items[i][1] for i in indices], size, prefix=prefix)
    return images, [indices[k] for k in kept]


def _usable(n_read: int, n_files: int, args) -> int:
    """How many images all ranks read; an error when a folder gave none (every file was skipped)."""
    from ..data.images import no_readable_images

    total = int(distributed.all_sum([n_read]).item())
    if total == 0 and args.images:
        raise no_readable_images(args.images, n_files)
    return total


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i: i + size] for i in range(0, len(indices), size)]


def _read(path, size: int, align: bool = False) -> torch.Tensor:
    """An image file (:func:`dclip.data.images.read_image`) as a (1, 3, size, size) tensor, ``align``-ed or not."""
    from ..data.faces import photo_to_tensor
    from ..data.images import read_image

    return photo_to_tensor(read_image(path), size, align=align)[0]


def _load_model(args):
    from ..models.unet import load_unet

    return load_unet(args.model, config=args.model_config).to(args.device)


def _latents_cache(args) -> Path:
    """``--cache``, else the disk cache's latents folder (kept within its size limit afterwards)."""
    from ..runtime.cache import section

    return Path(args.cache) if args.cache else section("latents")


def _bound_cache(args) -> None:
    """Keep the default disk cache within its size limit (rank 0 only under torchrun)."""
    if not args.cache and distributed.is_main():
        from ..runtime.cache import enforce_limit

        enforce_limit()


def _precompute(args) -> None:
    """Invert the images to t0 into the cache, one file per image: under torchrun each rank inverts
    its own share (:func:`dclip.runtime.distributed.shard`); images already cached are read, not redone."""
    from ..runtime.fast import RECONSTRUCTION
    from ..method.latents import fingerprint, precompute_each

    model = _load_model(args)
    t0 = args.t0 or 400
    size = int(model.config.sample_size)
    items = _image_items(args, size)
    weights = fingerprint(model.state_dict())
    mine = distributed.shard(len(items))
    args.done.total = len(mine)
    err = elements = computed = 0.0
    pairs = []
    for chunk in _chunks(mine, args.batch_size or 8):
        images, chunk = _load(items, chunk, size, args)
        latents, n_new = precompute_each(model, images, t0, args.n_inv,
                                         cache_dir=_latents_cache(args), batch_size=args.batch_size,
                                         progress=args.progress, weights=weights, fast=RECONSTRUCTION)
        args.done.done += len(chunk)  # each in the cache now
        err += (latents.x_rec - latents.x0).abs().double().sum().item()
        elements += latents.x0.numel()
        computed += n_new
        if args.out:
            pairs += [(i, latents.x0[j], latents.x_rec[j]) for j, i in enumerate(chunk)]
    n_read = _usable(args.done.done, len(items), args)
    err, elements, computed = distributed.all_sum([err, elements, computed]).tolist()
    skipped = f"; {len(items) - n_read} unreadable, skipped" if n_read < len(items) else ""
    distributed.print_main(f"{n_read} images inverted to t0={t0} with S_inv={args.n_inv} ({int(computed)} now, "
                           f"{n_read - int(computed)} from the cache {_latents_cache(args)}{skipped}); "
                           f"reconstruction MAE {err / elements:.4f}")
    _bound_cache(args)
    if args.out:
        pairs = sorted((p for part in distributed.gather(pairs) for p in part), key=lambda p: p[0])
        if distributed.is_main():
            from ..data.images import save_image

            grid = torch.cat([torch.cat([p[1] for p in pairs], 2), torch.cat([p[2] for p in pairs], 2)], 1)
            print(f"wrote {save_image(grid, args.out)}")


def _finetune_config(args, name: str | None = None):
    from .toy import preset as toy_preset
    from ..method.attributes import Attribute, attribute
    from ..method.finetune import attribute_config

    name = name or (args.attribute[0] if args.attribute else None)
    preset = attribute(name) if name else None
    source = args.source or (preset.source if preset else None)
    target = args.target or (preset.target if preset else None)
    if not source or not target:
        raise ValueError("give --attribute NAME, or both --source and --target texts.")
    toy = toy_preset(args, name if preset and not args.source and not args.target else None)
    attr = Attribute(source, target, args.t0 or (preset.t0 if preset else 400),
                     use_id=preset.use_id if preset else False, use_l1=preset.use_l1 if preset else True)
    flags = dict(n_gen=args.n_gen, n_iter=args.n_iter, lr=args.lr, lambda_clip=args.lambda_clip,
                 lambda_l1=args.lambda_l1, lambda_id=args.lambda_id)
    toy = {k: v for k, v in toy.items() if k in flags}  # --model toy (and its edit's recipe); a flag given wins
    overrides = {**toy, **{k: v for k, v in flags.items() if v is not None}}
    return attribute_config(attr, args.recipe or "paper", mode=args.mode, batch_size=args.batch_size, seed=args.seed,
                            adapter=args.adapter, rank=args.rank, loss_at=args.loss_at, **overrides)


def default_device() -> str:
    """``--device``'s default: cuda when available, else cpu (computed after parsing: the parser imports no torch)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _fast(args):
    """The fast path of a fine-tune or an edit: "auto" for the device (bf16 autocast on CUDA and on CPUs with native
    bf16, :func:`dclip.runtime.fast.cpu_bf16_native`), with --grad-checkpointing, --bf16 (bf16 autocast where the
    mode has none) and --fp32 (no autocast off CUDA) applied to it."""
    from ..runtime.fast import resolve

    device = args.device or default_device()
    fast = resolve("fp32-off-cuda" if getattr(args, "fp32", False) else "auto", device)
    changes = {}
    if getattr(args, "grad_checkpointing", False):
        changes["grad_checkpointing"] = True
    if getattr(args, "bf16", False) and fast.autocast is None:
        changes["autocast"] = "bf16"
    return fast.replace(name=fast.name, **changes) if changes else fast


def _identity_model(args):
    """The identity network: ArcFace from --arcface-weights, facenet from --face-weights, else ArcFace when
    its file is in $DCLIP_WEIGHTS and facenet otherwise (saying so)."""
    from ..models.arcface import load_arcface
    from ..models.identity import load_face_model, load_identity_model

    if args.arcface_weights:
        return load_arcface(args.arcface_weights, device=args.device)
    if args.face_weights:
        return load_face_model(device=args.device, weights=args.face_weights)
    model, note = load_identity_model(args.device)
    if note:
        distributed.print_main(f"note: {note}")
    return model


def _finetune(args) -> None:
    """One attribute: fine-tune (data-parallel over the ranks under torchrun; rank 0 writes the model).
    Several: one fine-tune per attribute, the ranks taking every W-th attribute."""
    from .toy import notes as toy_notes
    from ..method.finetune import save_finetuned
    from ..method.latents import fingerprint

    several = args.attribute is not None and len(args.attribute) > 1
    if several and (args.source or args.target):
        raise ValueError("--source/--target describe one edit: give them with one --attribute (or none), "
                         "or give several --attribute presets without them.")
    configs = {name: _finetune_config(args, name) for name in (args.attribute if several else [None])}
    for note in toy_notes(args, next(iter(configs.values()))):
        distributed.print_main(f"note: {note}")
    model = _load_model(args)
    size = int(model.config.sample_size)
    items = _image_items(args, size)
    clip = _load_clip(args)
    face_model = _identity_model(args) if any(c.lambda_id > 0 for c in configs.values()) else None
    weights = fingerprint(model.state_dict())
    if not several:
        config = configs[None]
        data_parallel = distributed.world_size() > 1
        mine = distributed.batch_share(len(items), config.batch_size) if data_parallel else range(len(items))
        if args.reuse and data_parallel:
            raise ValueError("--reuse fine-tunes in one process; run without torchrun, or without --reuse.")
        images = _load(items, list(mine), size, args)[0]
        _usable(len(images), len(items), args)
        result = _run_finetune(model, images, clip, config, face_model, args, data_parallel, weights)
        if distributed.is_main():
            _report(result, save_finetuned(result, args.out, base=args.model))
        _bound_cache(args)
        return
    names = list(configs)
    distributed.print_main(f"fine-tuning {len(names)} attributes on {distributed.world_size()} rank(s): "
                           + "; ".join(f"rank {r}: {', '.join(names[r::distributed.world_size()]) or '-'}"
                                       for r in range(distributed.world_size())))
    mine = names[distributed.rank()::distributed.world_size()]
    args.done.total, args.done.unit, args.done.rest = len(mine), "fine-tunes", f"those are complete in {args.out}"
    images = _load(items, list(range(len(items))), size, args)[0] if mine else None
    _usable(len(images) if mine else 0, len(items), args)
    for name in mine:
        config = configs[name]
        result = _run_finetune(model, images, clip, config, face_model, args, False, weights)
        _report(result, save_finetuned(result, Path(args.out) / name, base=args.model), prefix=distributed.rank_tag())
        args.done.done += 1
    _bound_cache(args)


def _load_clip(args):
    from ..models.clip import load_clip, tiny_clip

    if args.clip == "tiny":
        return tiny_clip(device=args.device)
    return load_clip(args.clip, device=args.device, weights=args.clip_weights)


def _run_finetune(model, images, clip, config, face_model, args, data_parallel: bool, weights: str):
    """Invert ``images`` (into the latents cache) and fine-tune; with --reuse first look in the engine's
    fine-tune cache (:func:`dclip.method.finetune.read_cached_finetune`), which skips both when it can,
    and keep a new result there."""
    from ..method.finetune import finetune
    from ..method.latents import precompute_each
    from ..runtime.fast import RECONSTRUCTION

    def latents():
        return precompute_each(model, images, config.t0, args.n_inv, cache_dir=_latents_cache(args),
                               progress=args.progress, weights=weights, fast=RECONSTRUCTION)[0]

    cache = path = None
    if args.reuse:
        from ..method.finetune import finetuned_cache_path, read_cached_finetune
        from ..runtime.cache import cache_root

        cache = cache_root()
        path = finetuned_cache_path(cache, model, images, config, args.n_inv, weights=weights)
        cached = read_cached_finetune(path, model, config)
        if cached is not None:  # then nothing is inverted
            return cached
    result = finetune(model, latents(), clip, config, face_model=face_model if config.lambda_id > 0 else None,
                      progress=args.progress, data_parallel=data_parallel, fast=_fast(args))
    if path is not None:
        from ..method.finetune import store_finetune

        store_finetune(result, path, cache, args.model)
    return result


def _report(result, path: Path, prefix: str = "") -> None:
    what = "an identical earlier fine-tune, read from the disk cache"
    if result.history:
        first, last = result.history[0]["loss"], result.history[-1]["loss"]
        ranks = f" on {result.world_size} ranks" if result.world_size > 1 else ""
        what = f"{len(result.history)} updates{ranks}, loss {first:.4f} -> {last:.4f}"
    print(f"{prefix}'{result.config.source}' -> '{result.config.target}': {what}")
    print(f"{prefix}wrote {path} and {path.with_suffix('.json')}")
    sys.stdout.flush()


def _trained_t0(path: str) -> int:
    """The t0 a dclip fine-tune was trained at (its JSON sidecar), else 400."""
    from ..models.folder import read_sidecar

    return int(read_sidecar(path).get("hyperparameters", {}).get("t0", 400))


def _edit(args) -> None:
    """Edit one image (rank 0 under torchrun), or a folder: each rank edits its share of the images
    whose output is not there yet and writes them, one file per image."""
    from ..method.edit import edit, edit_multi
    from ..method.finetune import load_finetuned
    from ..data.faces import photo_to_tensor
    from ..data.images import read_image, save_image
    from ..method.mixing import noise_mix, parse_gammas

    if args.from_png:  # the saved edit names its own models and settings
        from .from_png import run

        return run(args)
    if not args.finetuned:
        raise ValueError("edit needs --finetuned MODEL (or --from-png FILE, an edit the live editor saved).")
    photo = read_image(args.image) if args.image else None  # a broken file fails before any model is loaded
    if len(args.finetuned) > 1 and not args.gammas:
        raise ValueError("several --finetuned models need --gammas, e.g. '300:1,0;0:0.3,0.7'.")
    gammas = parse_gammas(args.gammas) if args.gammas else None
    original = _load_model(args)
    models = [load_finetuned(p, base=original, base_name=args.model) for p in args.finetuned]
    size = int(original.config.sample_size)
    t0 = args.t0 or _trained_t0(args.finetuned[0])
    if gammas is not None:
        noise_mix(original, models, ratio=args.ratio, gammas=gammas)  # checks the schedule fits the models

    def run(x0):
        x0 = x0.to(args.device)
        if gammas is not None:
            return edit_multi(original, models, x0, t0, gammas, ratio=args.ratio, n_inv=args.n_inv,
                              n_gen=args.n_gen, progress=args.progress, fast=_fast(args))
        return edit(original, models[0], x0, t0, n_inv=args.n_inv, n_gen=args.n_gen, ratio=args.ratio,
                    progress=args.progress, finish_at=args.finish_at, fast=_fast(args))

    if args.image:
        if distributed.is_main():
            x0 = photo_to_tensor(photo, size, align=args.align)[0]
            print(f"wrote {save_image(torch.cat([x0, run(x0).cpu()], 3), args.out)} (original | edited)")
        return
    items = _image_items(args, size)
    targets = [Path(args.out) / f"{name}.png" for name, _ in items]
    if len(set(targets)) < len(targets):
        raise ValueError(f"'{args.images}' holds files with the same name but different suffixes; their edits "
                         "would overwrite each other in --out. Rename them or edit them separately.")
    mine = distributed.shard(len(items))
    todo = [i for i in mine if not targets[i].is_file()]
    there = args.done.done = len(mine) - len(todo)
    args.done.total = len(mine)
    for chunk in _chunks(todo, args.batch_size):
        x0, chunk = _load(items, chunk, size, args)
        x = run(x0).cpu() if chunk else x0
        for j, i in enumerate(chunk):
            save_image(x[j: j + 1], targets[i])
            args.done.done += 1
    _usable(args.done.done, len(items), args)
    edited, there = distributed.all_sum([args.done.done - there, there]).tolist()
    unreadable = f", {len(items) - int(edited + there)} unreadable, skipped" if edited + there < len(items) else ""
    distributed.print_main(f"edited {int(edited)} of {len(items)} images into {args.out} "
                           f"({int(there)} were already there{unreadable})")
