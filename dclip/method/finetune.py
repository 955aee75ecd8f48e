"""DiffusionCLIP fine-tuning (Sec. 3, eq. 10): a copy of the diffusion model is trained so that DDIM
generation from each training latent moves the image along the CLIP text direction.

Per update: start from the precomputed latent x_{t0}, generate with S_gen steps (gradients through
every UNet call), take the loss, step Adam. The objective is eq. 10 as the original code computes it,

    L = λ_clip · (−log((2 − L_direction)/2)) + λ_L1 · |x0 − x̂| + λ_ID · (1 − cos(face(x0), face(x̂)))

Two modes (the authors' supplement, Sec. B.1):

* ``full``: backpropagate through the whole S_gen chain, one optimizer step per batch. Gradient
  checkpointing (``FastPath.grad_checkpointing``) trades compute for memory.
* ``efficient``: at every generation step the loss is taken on that step's x̂0 (eq. 6), followed by
  backward and an optimizer step; x is detached between steps, so memory is one UNet call's. Unlike
  the original efficient mode, the identity loss here is computed on x̂0 and carries gradient.

Two options beyond the paper (issue 24) change what is trained, so they are config fields, not fast-path
settings: ``adapter="lora"`` trains a rank-r LoRA adapter (:mod:`dclip.method.adapters`) instead of every
weight, and ``loss_at="first_step"`` takes the loss on x̂0 predicted at t0 in one UNet call (eq. 6), as
Eff-Diff does, instead of after the S_gen chain.

The original model is never modified: each call trains a fresh copy (the UNet restarts from the
pretrained weights for every text pair).

Performance settings (``fast=``, see :mod:`dclip.runtime.fast`) never change what is optimised. On the fast
path the losses stay on the device and are read back once at the end -- or once per update when a
``callback`` or the progress bar needs them -- instead of at every step.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..runtime import distributed
from .attributes import Attribute, attribute
from .losses import clip_objective, directional_clip_loss, text_direction
from .ddim import DEFAULT_SCHEDULE, denoise_step, generation_pairs
from ..runtime.fast import FastPath, Session, device_of, session
from .latents import Latents
from ..runtime.progress import progress_bar, progress_enabled
from .finetune_files import load_finetuned, save_finetuned
from .recipes import PAPER_LAMBDA_ID, RECIPES

__all__ = ["FinetuneConfig", "RECIPES", "recipe", "attribute_config", "PAPER_LAMBDA_ID", "NO_IDENTITY_NOTE",
           "world_settings", "finetune_cached", "read_cached_finetune", "store_finetune",
           "finetuned_cache_path", "FinetuneResult", "finetune", "save_finetuned",
           "load_finetuned"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Every setting of one fine-tune that changes what is optimised. Defaults are the paper's (Sec. 4).

    How it runs (precision, gradient checkpointing, memory layout) is the fast path's
    (:class:`dclip.runtime.fast.FastPath`, ``finetune(..., fast=)``), never the config's."""

    source: str
    target: str
    t0: int = 400
    n_gen: int = 6                 # S_gen during training
    n_iter: int = 1                # passes over the training latents
    lr: float = 1e-6
    lr_gamma: float = 1.2          # lr multiplied by this ...
    lr_step: int = 50              # ... every lr_step updates (lr_step_unit="update") or epochs
    lr_step_unit: str = "update"   # "update" | "epoch"
    lambda_clip: float = 1.0
    lambda_l1: float = 0.3
    lambda_id: float = 0.0
    mode: str = "full"             # "full" | "efficient"
    batch_size: int = 1
    seed: int = 0
    # beyond the paper (issue 24): what is trained and where the loss is taken
    adapter: str = "none"          # "none": every weight (the paper); "lora": a rank-`rank` adapter (method.adapters)
    rank: int = 4                  # LoRA rank r (adapter="lora")
    loss_at: str = "chain_end"     # "chain_end": x̂ after the S_gen chain (the paper); "first_step": Eff-Diff's x̂0
    lambda_l2: float = 0.0         # beyond the paper: weight of a squared error (x0 − x̂)² (the toy world's control
                                   # fine-tune towards the true edit, dclip.studies.edit_failures.truth_finetune)

    def __post_init__(self):
        from .adapters import ADAPTERS

        if self.mode not in ("full", "efficient"):
            raise ValueError(f"mode must be 'full' or 'efficient'; got '{self.mode}'.")
        if self.adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {ADAPTERS}; got '{self.adapter}'.")
        if self.loss_at not in LOSS_AT:
            raise ValueError(f"loss_at must be one of {LOSS_AT}; got '{self.loss_at}'.")
        if self.rank < 1:
            raise ValueError(f"the LoRA rank must be ≥ 1; got {self.rank}.")
        if self.lr_step_unit not in ("update", "epoch"):
            raise ValueError(f"lr_step_unit must be 'update' or 'epoch'; got '{self.lr_step_unit}'.")
        if not self.source.strip() or not self.target.strip():
            raise ValueError("source and target texts must not be empty.")
        if self.n_gen < 2 or self.n_iter < 1 or self.batch_size < 1 or self.lr_step < 1:
            raise ValueError("n_gen must be ≥ 2 and n_iter, batch_size, lr_step ≥ 1.")


#: Where eq. 10's loss is taken: on the image after the whole S_gen chain from x_t0 (the paper), or on x̂0
#: predicted in one step at t0 (eq. 6; Eff-Diff, Starodubcev et al. 2023: one UNet call with gradients per
#: update instead of S_gen).
LOSS_AT = ("chain_end", "first_step")

# The named recipes (:data:`dclip.method.recipes.RECIPES`) live in a torch-free module for the CLI's help.


def recipe(name: str, source: str, target: str, **overrides) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from a named recipe, with any field overridden."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe '{name}'; choose from {sorted(RECIPES)}.")
    return FinetuneConfig(source=source, target=target, **{**RECIPES[name], **overrides})


#: Why the toy world's fine-tunes have no identity term (the CLI says it at ``--model toy``).
NO_IDENTITY_NOTE = "the toy faces have no face-recognition model, so λ_ID is 0 (no identity term)"


def world_settings(world: str) -> dict:
    """What a world changes in every fine-tune's settings, the one rule the notebooks' toy world
    (:class:`dclip.notebook.worlds.ToyWorld`) and the CLI's ``--model toy`` share: in the toy world (``"toy"``)
    λ_ID = 0 (:data:`NO_IDENTITY_NOTE`); elsewhere nothing, the attribute and the recipe decide."""
    return {"lambda_id": 0.0} if world == "toy" else {}


def attribute_config(attr: Attribute | str, recipe_name: str = "paper", **overrides) -> FinetuneConfig:
    """The fine-tuning settings of one attribute -- the one place that decides them (notebooks, CLI, editor).

    The attribute gives the texts and t0; the recipe gives the rest, with λ_L1 = 0 when the attribute
    turns the L1 term off (``use_l1=False``) and the paper's λ_ID = 0.1 when it keeps identity
    (``use_id=True``) unless the recipe sets its own (``authors_readme``: 0). ``overrides`` (any
    :class:`FinetuneConfig` field) win over all of that. ``attr`` is an :class:`Attribute` or its name.
    """
    attr = attribute(attr) if isinstance(attr, str) else attr
    settings: dict = {"t0": int(attr.t0)}
    if not attr.use_l1:
        settings["lambda_l1"] = 0.0
    if attr.use_id and "lambda_id" not in RECIPES.get(recipe_name, {}):
        settings["lambda_id"] = PAPER_LAMBDA_ID
    return recipe(recipe_name, attr.source, attr.target, **{**settings, **overrides})


@dataclass
class FinetuneResult:
    """The fine-tuned model, its settings, one history row per optimizer step, and the performance
    settings it was trained with (:class:`dclip.runtime.fast.FastPath`)."""

    model: torch.nn.Module
    config: FinetuneConfig
    history: list[dict] = field(default_factory=list)
    fast: FastPath | None = None
    world_size: int = 1            # ranks that trained it data-parallel (global batch: world_size × batch_size)
    stopped: bool = False          # ended early by ``finetune(..., stop=)``: not the config's full training

    def losses(self, key: str = "loss") -> list[float]:
        return [row[key] for row in self.history]


class _Objective:
    """Eq. 10 for a batch: CLIP direction term, L1 and (optionally) the face identity term.

    Each batch mean is the batch's own in one process, and the global batch's over all ranks when
    data-parallel (:func:`dclip.runtime.distributed.global_means`)."""

    def __init__(self, clip, config: FinetuneConfig, face_model, data_parallel: bool = False):
        if config.lambda_id > 0 and face_model is None:
            raise ValueError("lambda_id > 0 needs a face model: pass face_model=dclip.models.identity.load_face_model().")
        self.clip, self.config, self.face_model = clip, config, face_model
        self.data_parallel = data_parallel
        self.direction = text_direction(clip, config.source, config.target)

    def __call__(self, x0: torch.Tensor, x: torch.Tensor | None) -> dict:
        """The loss to backpropagate and its terms as detached 0-d tensors (read back later).
        ``x`` is None on a data-parallel rank with no images in this update (it still joins the means)."""
        c = self.config
        none = x0.new_zeros(0)
        terms = {"clip": none, "l1": none}
        if x is not None:
            x = x.float()
            with torch.set_grad_enabled(c.lambda_clip != 0 and torch.is_grad_enabled()):  # λ_CLIP 0: logged only
                l_dir = directional_clip_loss(self.clip, x0, x, self.direction)
            terms = {"clip": l_dir, "l1": (x0 - x).abs()}
            if c.lambda_l2 > 0:
                terms["l2"] = (x0 - x).square()
        elif c.lambda_l2 > 0:
            terms["l2"] = none
        if c.lambda_id > 0:
            from .losses import identity_loss

            terms["id"] = none if x is None else identity_loss(self.face_model, x0, x, lambda_l1=0.0, lambda_face=1.0)
        means = dict(zip(terms, distributed.global_means(*terms.values()) if self.data_parallel
                         else [v.mean() for v in terms.values()]))
        # the batch mean of L_direction goes inside the log, as in the original (equal at batch size 1)
        l_clip = clip_objective(means["clip"])
        loss = c.lambda_clip * l_clip + c.lambda_l1 * means["l1"]
        row = {"clip": l_clip.detach(), "l1": means["l1"].detach()}
        if c.lambda_l2 > 0:
            loss = loss + c.lambda_l2 * means["l2"]
            row["l2"] = means["l2"].detach()
        if c.lambda_id > 0:
            loss = loss + c.lambda_id * means["id"]
            row["id"] = means["id"].detach()
        row["loss"] = loss.detach()
        return {"loss": loss, "row": row}

    def step(self, opt, out: dict, idle: bool = False) -> None:
        """Backward (not on an ``idle`` rank, which had no images), the gradient all-reduce when
        data-parallel, the optimizer step."""
        if not idle:
            out["loss"].backward()
        if self.data_parallel:
            distributed.average_gradients(p for group in opt.param_groups for p in group["params"])
        opt.step()


def _full_update(s: Session, model, objective, opt, x0, x_lat, config, pairs) -> list[dict]:
    opt.zero_grad(set_to_none=True)
    x = None
    if len(x0):  # empty only on a data-parallel rank left out of a short last batch
        x = s.layout(x_lat)
        with s.autocast():
            if config.loss_at == "first_step":  # x̂0 of eq. 6 at t0: one UNet call
                x = denoise_step(model, x, *pairs[0], DEFAULT_SCHEDULE)[1]
            else:
                for t, t_next in pairs:
                    x = denoise_step(model, x, t, t_next, DEFAULT_SCHEDULE)[0]
    out = objective(x0, x)
    objective.step(opt, out, idle=x is None)
    return [out["row"]]


def _efficient_update(s: Session, model, objective, opt, x0, x_lat, config, pairs) -> list[dict]:
    x, rows = s.layout(x_lat), []
    for t, t_next in pairs:
        opt.zero_grad(set_to_none=True)
        x_next = x0_pred = None
        if len(x0):
            with s.autocast():
                x_next, x0_pred = denoise_step(model, x, t, t_next, DEFAULT_SCHEDULE)
        out = objective(x0, x0_pred)
        objective.step(opt, out, idle=x0_pred is None)
        rows.append(out["row"])
        x = x_next.detach() if x_next is not None else x
    return rows


class _History:
    """History rows whose loss values are still on the device; :meth:`flush` reads them back at once.

    A row is the mean over an update's optimizer steps (one in full mode, S_gen in efficient mode),
    averaged in Python floats as each value's ``.item()`` would give.
    """

    def __init__(self, result: "FinetuneResult", bar, callback):
        self.result, self.bar, self.callback = result, bar, callback
        self.pending: list[tuple[list[dict], dict]] = []

    def add(self, steps: list[dict], meta: dict) -> None:
        self.pending.append((steps, meta))

    def flush(self) -> None:
        if not self.pending:
            return
        values = [v for steps, _ in self.pending for step in steps for v in step.values()]
        floats = iter(torch.stack([v.float() for v in values]).tolist())
        for steps, meta in self.pending:
            read = [{k: next(floats) for k in step} for step in steps]
            row = {"i": len(self.result.history), **{k: sum(r[k] for r in read) / len(read) for k in read[-1]}}
            row.update(meta)
            self.result.history.append(row)
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", clip=f"{row['clip']:.4f}")
            if self.callback is not None:
                self.callback(row)
        self.pending.clear()


def _batches(latents: Latents, batch_size: int, device: torch.device, data_parallel: bool = False) -> list[tuple]:
    """(x0, x_lat) per update, still on the host. For CUDA they sit in pinned memory, so copying a
    batch at its update does not block the host (a pageable copy waits for the GPU every time).
    Data-parallel, a rank with fewer batches than another (a short last global batch) gets empty
    ones, so that every rank takes part in every update."""
    x0, x_lat = latents.x0, latents.x_lat
    if device.type == "cuda" and x0.device.type == "cpu":
        x0, x_lat = x0.pin_memory(), x_lat.pin_memory()
    batches = list(zip(x0.split(batch_size), x_lat.split(batch_size))) if len(x0) else []
    if data_parallel:
        batches += [(x0[:0], x_lat[:0])] * (distributed.all_max(len(batches)) - len(batches))
    return batches


def _train(s: Session, model, objective, latents: Latents, config: FinetuneConfig, history: _History,
           observed: bool, stop=None) -> bool:
    """The epochs: one update per batch, the lr schedule, the history (read back as ``observed`` needs).
    Returns True when ``stop()`` asked to end early (checked after each update but the last: a Stop that comes
    after the last update finds the training complete)."""
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trained, lr=config.lr, weight_decay=0.0, **s.adam_kwargs())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_step, gamma=config.lr_gamma)
    update = _full_update if config.mode == "full" else _efficient_update
    pairs = generation_pairs(config.t0, config.n_gen)
    if config.loss_at == "first_step":
        pairs = pairs[:1]
    batches = _batches(latents, config.batch_size, s.device, objective.data_parallel)
    runner = s.runner(model)
    for epoch in range(config.n_iter):
        for b, (x0, x_lat) in enumerate(batches):
            x0, x_lat = x0.to(s.device, non_blocking=True), x_lat.to(s.device, non_blocking=True)
            steps = update(s, runner, objective, opt, x0, x_lat, config, pairs)
            history.add(steps, dict(epoch=epoch, batch=b, lr=opt.param_groups[0]["lr"]))
            if config.lr_step_unit == "update":
                sched.step()
            history.bar.update()
            if observed:
                history.flush()
            last = epoch == config.n_iter - 1 and b == len(batches) - 1
            if stop is not None and not last and stop():  # a Stop after the last update: the training is complete
                history.flush()
                return True
        if config.lr_step_unit == "epoch":
            sched.step()
    history.flush()
    return False


def _trainable_copy(original: torch.nn.Module, config: FinetuneConfig) -> torch.nn.Module:
    """A copy of ``original`` in training mode with what ``config`` trains unfrozen: every weight, or a new
    LoRA adapter (``adapter="lora"``) with the base weights frozen. The adapter's random initial weights are
    drawn from ``config.seed``, not from the caller's random state, so a fine-tune is the same whatever ran
    before it."""
    model = copy.deepcopy(original).train()
    if config.adapter == "lora":
        from .adapters import add_lora

        with torch.random.fork_rng(devices=_cuda_devices(original)):
            torch.manual_seed(config.seed)
            return add_lora(model, config.rank)
    return model.requires_grad_(True)


def _cuda_devices(model) -> list[int]:
    device = device_of(model)
    return [device.index or 0] if device.type == "cuda" else []


def finetune(original: torch.nn.Module, latents: Latents, clip, config: FinetuneConfig, *, face_model=None,
             progress: bool | None = None, callback=None, fast: FastPath | str | None = "auto",
             data_parallel: bool = False, stop=None) -> FinetuneResult:
    """Fine-tune a copy of ``original`` on precomputed ``latents`` with the directional CLIP loss (eq. 10).

    ``latents`` must have been inverted to ``config.t0`` (see :func:`dclip.method.latents.precompute`).
    ``callback`` gets each history row after its update (the shape of :data:`dclip.method.ddim.Callback`):
    ``"i"`` the update's index, its losses (``"loss"``, ``"clip"``, ``"l1"``, ``"id"``; ``"l2"`` with λ_L2 > 0), ``"lr"``,
    ``"epoch"`` and ``"batch"``.
    ``fast`` picks the performance settings (:mod:`dclip.runtime.fast`; ``"auto"``: fp32 on the CPU, bf16
    autocast, TF32 and channels_last on CUDA; ``"reference"``: the original implementation's path).

    ``data_parallel=True`` under torchrun (an initialised process group, see :mod:`dclip.runtime.distributed`)
    trains one model on all ranks: ``latents`` are this rank's share, the items
    ``dclip.runtime.distributed.batch_share(n, config.batch_size)`` of the n training latents, and
    ``config.batch_size`` is per rank. Rank 0's weights are copied to all ranks first; every batch
    mean of eq. 10 is taken over the global batch (the CLIP term's inside the −log) and gradients
    are averaged over ranks, so the result equals one process with batch ``world_size × batch_size``
    up to float rounding. Every rank ends with the same weights and history.

    ``stop``: a function of no arguments, asked after every update; when it returns True training ends there and
    the result keeps the weights so far, with ``stopped=True`` (:func:`finetune_cached` never stores it).
    """
    if latents.t0 != config.t0:
        raise ValueError(f"the latents were inverted to t0={latents.t0} but the config asks for t0={config.t0}; "
                         "precompute latents at the config's t0.")
    data_parallel = data_parallel and distributed.active()
    model = _trainable_copy(original, config)
    if data_parallel:
        distributed.broadcast_parameters(model)
    objective = _Objective(clip, config, face_model, data_parallel)
    result = FinetuneResult(model, config, world_size=distributed.world_size() if data_parallel else 1)
    enabled = progress_enabled(progress)
    local_batches = -(-len(latents) // config.batch_size)
    updates = config.n_iter * (distributed.all_max(local_batches) if data_parallel else local_batches)
    with torch.random.fork_rng(devices=_cuda_devices(model)), session(model, fast=fast) as s, \
            progress_bar(total=updates, desc="fine-tune", progress=enabled) as bar:
        torch.manual_seed(config.seed)  # seeded here, the caller's random state is left alone
        if s.fast.grad_checkpointing and config.mode == "full":
            model.enable_gradient_checkpointing()
        result.fast = s.fast
        observed = enabled or callback is not None or not s.fast.sync_free
        result.stopped = _train(s, model, objective, latents, config, _History(result, bar, callback), observed, stop)
    if model.is_gradient_checkpointing:
        model.disable_gradient_checkpointing()
    if not all(p.is_contiguous() for p in model.parameters()):  # left channels_last (cuda_graphs)
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    return result


# ----------------------------------------------------------------------------------------------
# The fine-tune cache (like the latents cache: one entry per base weights, images and settings)
# ----------------------------------------------------------------------------------------------

def finetuned_cache_path(cache: str | os.PathLike, base, images: torch.Tensor, config: FinetuneConfig,
                         inversion_steps: int, *, weights: str | None = None) -> Path:
    """Where the disk cache ``cache`` (:func:`dclip.runtime.cache.cache_root`) keeps a fine-tune: a hash
    of the base weights, the training images, t0, S_inv of their latents and every config field.
    ``weights``: the base model's :func:`~dclip.method.latents.fingerprint`, when the caller has it."""
    import hashlib

    from .latents import cache_key

    digest = hashlib.blake2b(digest_size=12)
    digest.update(cache_key(base, images, config.t0, inversion_steps, weights=weights).encode())
    digest.update(json.dumps(_cache_fields(config), sort_keys=True).encode())
    return Path(cache) / "finetuned" / f"{digest.hexdigest()}.safetensors"


def _cache_fields(config: FinetuneConfig) -> dict:
    """The config's fields in a cache key; the options added after the paper's (issue 24) only when set, so a
    paper fine-tune keeps the key it had before they existed."""
    fields = asdict(config)
    for name in ("adapter", "rank", "loss_at", "lambda_l2"):
        if fields[name] == FinetuneConfig.__dataclass_fields__[name].default or (
                name == "rank" and fields["adapter"] == "none"):
            del fields[name]
    return fields


def read_cached_finetune(path: str | os.PathLike | None, base, config: FinetuneConfig) -> FinetuneResult | None:
    """The fine-tune with ``config`` that the disk cache keeps at ``path`` (:func:`finetuned_cache_path`), or
    ``None`` when there is none there (or ``path`` is None), or when the entry is damaged (one warning line;
    the caller trains again and its result replaces the entry). One read from the cache has an empty
    ``history``."""
    from ..runtime.cache import is_complete, touch
    from ..runtime.errors import UnreadableFileError, warn

    if path is None or not is_complete(path):  # weights and sidecar both written
        return None
    try:
        model = load_finetuned(path, base=base)
    except UnreadableFileError as err:  # damaged on disk since: a miss, and the new result replaces it
        warn(f"ignored the disk cache's fine-tune '{err.path}': it {err.problem}; training again.")
        return None
    touch(path)
    return FinetuneResult(model, config)


def store_finetune(result: FinetuneResult, path: str | os.PathLike, cache: str | os.PathLike, base_name: str = ""
                   ) -> None:
    """Keep ``result`` in the disk cache at ``path``; in the cache root (:func:`dclip.runtime.cache.cache_root`)
    the cache is then kept within its size limit (:func:`dclip.runtime.cache.enforce_limit`)."""
    from ..runtime.cache import cache_root, enforce_limit

    save_finetuned(result, path, base=base_name)
    if Path(cache).resolve() == cache_root().resolve():  # the size limit is the cache root's
        enforce_limit(keep=(Path(path),))


def finetune_cached(base, images: torch.Tensor, clip, config: FinetuneConfig, *, inversion_steps: int,
                    cache: str | os.PathLike | None, latents: Latents | None = None, weights: str | None = None,
                    base_name: str = "", face_model: torch.nn.Module | None = None, progress: bool | None = None,
                    callback=None, fast: FastPath | str | None = "auto", stop=None) -> FinetuneResult:
    """:func:`finetune` on ``images`` (inverted to ``config.t0`` in ``inversion_steps``), or its result
    from the disk cache ``cache`` when an earlier run with the same base, images and settings left it
    there (then nothing is inverted or trained). ``cache=None``: no disk cache, always trained.

    ``latents`` (the :class:`Latents` of ``images``) and ``face_model`` are only used when training; without
    ``latents`` they are precomputed into the cache's ``latents/`` folder. A new result is saved in
    ``finetuned/`` (:func:`store_finetune`). Returns the :class:`FinetuneResult`; one read from the cache has
    an empty ``history``. A fine-tune ended early by ``stop`` (see :func:`finetune`) is returned, never stored.
    """
    from .latents import precompute

    path = None if cache is None else finetuned_cache_path(cache, base, images, config, inversion_steps,
                                                          weights=weights)
    cached = read_cached_finetune(path, base, config)
    if cached is not None:
        return cached
    if latents is None:
        latents = precompute(base, images, config.t0, inversion_steps, progress=progress, weights=weights,
                             cache_dir=Path(cache) / "latents" if cache is not None else None)
    result = finetune(base, latents, clip, config, face_model=face_model if config.lambda_id > 0 else None,
                      progress=progress, callback=callback, fast=fast, stop=stop)
    if path is not None and not result.stopped:
        store_finetune(result, path, cache, base_name)
    return result
