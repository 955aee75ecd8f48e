"""Performance settings of the engine: the fast path, and the reference mode it is measured against.

A :class:`FastPath` says *how* the engine runs a model, never *what* it computes: the same DDIM grid,
the same loss, the same optimiser. :func:`dclip.method.latents.precompute`, :func:`dclip.method.finetune.finetune`
and :func:`dclip.method.edit.edit` take it as ``fast=`` (a :class:`FastPath` or a mode name):

* ``"auto"`` (their default): ``"cuda"`` on a CUDA device, ``"cpu-bf16"`` on a CPU that runs bf16 natively
  (:func:`cpu_bf16_native`: AVX-512 BF16 or AMX, as far as ``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA``
  let PyTorch use them), ``"fp32"`` on any other CPU;
* ``"fp32"``: fp32, eager, PyTorch SDPA attention, several images per UNet call, on any device --
  exactly the numerics of plain :func:`dclip.invert` / :func:`dclip.generate` on the CPU (it was
  called ``"cpu"``, a misleading name for the fp32 mode the reconstruction numbers use on CUDA too);
* ``"cpu-bf16"``: bf16 autocast of the UNet calls on the CPU, everything else as ``"fp32"`` (the DDIM
  update, the latents and the loss stay fp32; ε is cast back to the latent's dtype);
* ``"cuda"``: bf16 autocast, TF32 matmuls and convolutions, channels_last, cuDNN autotuning, fused
  Adam; the DDIM update itself stays in fp32 (ε is cast back to the latent's dtype);
* ``"cuda-max"``: ``"cuda"`` plus ``torch.compile`` and CUDA graphs for the fixed-shape sampling
  loops (inversion, reconstruction, editing);
* ``"reference"``: the original implementation's path -- fp32 without TF32, eager, batch 1,
  classic (matmul + softmax) attention, no checkpointing, the loss read back at every update,
  for-loop Adam. Benchmarks report every speed-up against it, measured in the same run.

CUDA-only switches (TF32, cuDNN autotuning, CUDA graphs, fused Adam) are ignored off CUDA, so a
mode can be named on any device. The paper's equations (:mod:`dclip.method.ddim`, :func:`dclip.invert`,
:func:`dclip.generate`) know nothing of it: :mod:`dclip.method.accelerated` runs their loops inside a session.

A :func:`session` applies a mode to one or more models for the length of a ``with`` block: global
backend flags and the models' layout and attention processors are restored when it ends.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch


__all__ = ["FastPath", "MODES", "resolve", "session", "Session", "modules_of", "device_of", "model_token",
           "RECONSTRUCTION", "EDITING", "cpu_bf16_native", "fixed_precision"]

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
_ATTENTION = ("sdpa", "classic")


@dataclass(frozen=True)
class FastPath:
    """How the engine runs its models. Every field's default is the plain eager fp32 behaviour.

    Attributes:
        name: a label (the mode's name in :data:`MODES`).
        autocast: ``None`` (fp32), ``"bf16"`` or ``"fp16"``: autocast of the UNet calls.
        tf32: allow TF32 in CUDA matmuls and convolutions (``False``: IEEE fp32 everywhere).
        cudnn_benchmark: let cuDNN time its convolution algorithms once per shape.
        channels_last: NHWC weights and activations (``False``: the standard NCHW layout).
        attention: ``"sdpa"`` (PyTorch's fused scaled-dot-product attention, diffusers'
            ``AttnProcessor2_0``) or ``"classic"`` (matmul + softmax, the original code's path).
        compile: ``torch.compile`` the UNets (``compile_mode`` passed through).
        cuda_graphs: capture each fixed-shape sampling loop once and replay it (no gradients).
            A graph reads the weights where they were at capture, so the models are left in the
            mode's layout after the session (values unchanged) instead of being converted back,
            and the next call replays instead of capturing again.
        batch_size: images per UNet call in precompute and editing (``None``: each function's own
            default, 8 for precompute and the whole batch for editing).
        sync_free: fine-tuning keeps its loss values on the device and reads them back once at the
            end (or once per update when a callback or progress bar needs them).
        grad_checkpointing: recompute the UNet's activations in the backward pass of full-mode
            fine-tuning (memory for compute; the update is the same).
        fused_adam: ``True`` fused CUDA Adam, ``False`` the for-loop implementation, ``None`` the
            PyTorch default.
    """

    name: str = "custom"
    autocast: str | None = None
    tf32: bool = False
    cudnn_benchmark: bool = False
    channels_last: bool = False
    attention: str = "sdpa"
    compile: bool = False
    compile_mode: str | None = None
    cuda_graphs: bool = False
    batch_size: int | None = None
    sync_free: bool = True
    grad_checkpointing: bool = False
    fused_adam: bool | None = None

    def __post_init__(self):
        if self.autocast is not None and self.autocast not in _AUTOCAST:
            raise ValueError(f"autocast must be None or one of {sorted(_AUTOCAST)}; got {self.autocast!r}.")
        if self.attention not in _ATTENTION:
            raise ValueError(f"attention must be one of {_ATTENTION}; got {self.attention!r}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1 or None; got {self.batch_size}.")
        if self.cuda_graphs and self.compile_mode in ("reduce-overhead", "max-autotune"):
            raise ValueError(f"compile_mode={self.compile_mode!r} already uses CUDA graphs; with cuda_graphs=True "
                             "use compile_mode=None or 'max-autotune-no-cudagraphs'.")

    def replace(self, **changes) -> "FastPath":
        """A copy with some fields changed (named ``custom`` unless ``name`` is given)."""
        return dataclasses.replace(self, **{"name": "custom", **changes})

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _AUTOCAST.get(self.autocast) if self.autocast else None


_CUDA = FastPath("cuda", autocast="bf16", tf32=True, cudnn_benchmark=True, channels_last=True, fused_adam=True)

#: The named modes (see the module docstring).
MODES: dict[str, FastPath] = {
    "reference": FastPath("reference", attention="classic", batch_size=1, sync_free=False, fused_adam=False),
    "fp32": FastPath("fp32"),
    "cpu-bf16": FastPath("cpu-bf16", autocast="bf16"),
    "cuda": _CUDA,
    "cuda-max": dataclasses.replace(_CUDA, name="cuda-max", compile=True, cuda_graphs=True),
}


#: oneDNN's ``ONEDNN_MAX_CPU_ISA`` values below AVX-512 BF16: with one of them set, bf16 is emulated.
_ONEDNN_BELOW_BF16 = {"sse41", "avx", "avx2", "avx2_vnni", "avx2_vnni_2", "avx512_core", "avx512_core_vnni",
                      "default"}


def cpu_bf16_native() -> bool:
    """Whether this CPU runs bf16 matmuls and convolutions natively: AVX-512 BF16 or AMX tiles, and PyTorch allowed
    to use them (``ATEN_CPU_CAPABILITY`` not below AVX-512, ``ONEDNN_MAX_CPU_ISA`` not below ``AVX512_CORE_BF16``).

    ``$DCLIP_CPU_BF16`` = ``1`` / ``0`` overrides the detection (``0``: always fp32 on the CPU). Elsewhere bf16
    autocast still works on the CPU, emulated and slower than fp32, so ``"auto"`` does not choose it there.
    """
    override = os.environ.get("DCLIP_CPU_BF16", "").strip()
    if override in ("0", "1"):
        return override == "1"
    if override:
        raise ValueError(f"DCLIP_CPU_BF16 must be 0 or 1 (or unset: detect); got {override!r}.")
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().lower() in _ONEDNN_BELOW_BF16:
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def fixed_precision(fast: FastPath | str | None, precision: str) -> FastPath | str | None:
    """``fast`` for a run whose numbers must not depend on the CPU: ``precision="fp32"`` turns an ``"auto"``
    (or ``None``) into ``"fp32"`` off CUDA, so that bf16-capable CPUs compute the same numbers as the rest;
    ``"auto"`` keeps ``fast``. On CUDA, and for a named mode, ``fast`` stays as it is."""
    if precision not in ("auto", "fp32"):
        raise ValueError(f"precision must be 'auto' or 'fp32'; got {precision!r}.")
    if precision == "fp32" and (fast is None or fast == "auto"):
        return "fp32-off-cuda"
    return fast


def _auto(device: torch.device) -> str:
    """The mode ``"auto"`` names on ``device``."""
    if device.type == "cuda":
        return "cuda"
    return "cpu-bf16" if cpu_bf16_native() else "fp32"


def resolve(fast: FastPath | str | None, device: torch.device | str = "cpu") -> FastPath:
    """The :class:`FastPath` for a ``fast=`` argument on ``device``.

    ``None`` and ``"auto"`` pick ``"cuda"`` on a CUDA device, ``"cpu-bf16"`` on a CPU with native bf16
    (:func:`cpu_bf16_native`) and ``"fp32"`` elsewhere; ``"fp32-off-cuda"`` (:func:`fixed_precision`) picks
    ``"cuda"`` on CUDA and ``"fp32"`` on every CPU. CUDA-only switches are turned off on other devices.
    """
    device = torch.device(device)
    if fast is None or fast == "auto":
        fast = _auto(device)
    elif fast == "fp32-off-cuda":
        fast = "cuda" if device.type == "cuda" else "fp32"
    if isinstance(fast, str):
        if fast not in MODES:
            renamed = " (the fp32 mode once called 'cpu' is 'fp32')" if fast == "cpu" else ""
            raise ValueError(f"unknown fast-path mode {fast!r}; choose 'auto', 'fp32-off-cuda' or one of {sorted(MODES)}, "
                             f"or pass a dclip.runtime.fast.FastPath{renamed}.")
        fast = MODES[fast]
    if not isinstance(fast, FastPath):
        raise TypeError(f"fast must be a FastPath, a mode name or None; got {type(fast).__name__}.")
    if device.type != "cuda":
        fast = dataclasses.replace(fast, tf32=False, cudnn_benchmark=False, cuda_graphs=False,
                                   fused_adam=None if fast.fused_adam else fast.fused_adam)
    return fast


# ------------------------------------------------------------------------------------------------
# One precision per measured quantity
# ------------------------------------------------------------------------------------------------

#: Latents and reconstructions -- Table 1's MAE / LPIPS / SSIM, Fig. 8a, the printed reconstruction
#: error of ``python -m dclip precompute``, and the x_t0 every edit starts from: fp32 on every device.
#: These errors are of order 1e-2 per pixel, and bf16 (8-bit mantissa, ~4e-3 relative per rounding)
#: over S_inv + S_gen UNet calls would be a visible part of them. Every entry point (notebook context,
#: experiments, CLI, live editor) inverts with this mode.
RECONSTRUCTION = "fp32"

#: Edits and what is measured on them (S_dir, identity similarity, the toy judge): the fast path --
#: bf16 autocast on CUDA and on CPUs with native bf16, fp32 elsewhere (``"auto"``). The profiles whose numbers
#: are checked or published on CPUs (toy, toy-check, smoke) run it through :func:`fixed_precision` (fp32 on every
#: CPU; :attr:`dclip.notebook.profiles.Profile.precision`). The generation of an edit is what the method
#: outputs, the paper's numbers are means over images, and tests/test_fast.py bounds the bf16
#: path's distance from fp32 (``BF16_RTOL``).
EDITING = "auto"


# ------------------------------------------------------------------------------------------------
# Models: which modules a model (a UNet, a mix, a function) holds, and where they live
# ------------------------------------------------------------------------------------------------

def modules_of(*models) -> list[torch.nn.Module]:
    """The distinct ``nn.Module``s inside ``models`` (UNets, mixes of them; plain functions hold none)."""
    found: dict[int, torch.nn.Module] = {}

    def walk(model):
        if isinstance(model, torch.nn.Module):
            found.setdefault(id(model), model)
        elif hasattr(model, "submodels"):
            for sub in model.submodels():
                walk(sub)

    for model in models:
        walk(model)
    return list(found.values())


def device_of(*models, default: torch.device | str = "cpu") -> torch.device:
    """The device of the first parameter found in ``models`` (``default`` when there is none)."""
    for module in modules_of(*models):
        for p in module.parameters():
            return p.device
    return torch.device(default)


# ------------------------------------------------------------------------------------------------
# Global backend flags (restored afterwards)
# ------------------------------------------------------------------------------------------------

def _tf32_state() -> tuple:
    """The TF32 switches of matmuls and cuDNN convolutions, through whichever API they were set with.

    PyTorch ≥ 2.9 has a second API (``fp32_precision``) and refuses to read the legacy
    ``allow_tf32`` once the two disagree; then the new one is read (and later written) instead.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    try:
        return "legacy", matmul.allow_tf32, cudnn.allow_tf32
    except RuntimeError:
        return "new", matmul.fp32_precision, cudnn.conv.fp32_precision


def _restore_tf32(state: tuple) -> None:
    api, mm, conv = state
    if api == "legacy":
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = mm, conv
    else:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = mm, conv


def _set_tf32(enabled: bool) -> tuple:
    """Allow (or forbid) TF32 in matmuls and convolutions; returns the previous state."""
    state = _tf32_state()
    if state[0] == "legacy":
        _restore_tf32(("legacy", enabled, enabled))
    else:
        precision = "tf32" if enabled else "ieee"
        _restore_tf32(("new", precision, precision))
    return state


@contextlib.contextmanager
def backend_flags(fast: FastPath, device: torch.device) -> Iterator[None]:
    """TF32 and cuDNN autotuning as ``fast`` says, on CUDA only; the previous values come back after."""
    if torch.device(device).type != "cuda":
        yield
        return
    old_bench = torch.backends.cudnn.benchmark
    old_tf32 = _set_tf32(fast.tf32)
    torch.backends.cudnn.benchmark = fast.cudnn_benchmark
    try:
        yield
    finally:
        _restore_tf32(old_tf32)
        torch.backends.cudnn.benchmark = old_bench


# ------------------------------------------------------------------------------------------------
# Preparing a module: layout and attention processors (undone afterwards), compilation
# ------------------------------------------------------------------------------------------------

def _in_layout(module: torch.nn.Module, channels_last: bool) -> bool:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return all(p.is_contiguous(memory_format=fmt) for p in module.parameters() if p.dim() == 4)


def _layout(module: torch.nn.Module, channels_last: bool) -> Callable[[], None] | None:
    """Put ``module``'s weights in NHWC (or the standard NCHW) layout; return the undo, or None when
    they already are."""
    if _in_layout(module, channels_last):
        return None
    want, was = ((torch.channels_last, torch.contiguous_format) if channels_last
                 else (torch.contiguous_format, torch.channels_last))
    module.to(memory_format=want)
    return lambda: module.to(memory_format=was)


def _attention(module: torch.nn.Module, kind: str) -> Callable[[], None] | None:
    """Put diffusers' SDPA or classic processor on every attention layer using one of the two."""
    try:
        from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0
    except ImportError:  # not a diffusers model
        return None
    want = AttnProcessor2_0 if kind == "sdpa" else AttnProcessor
    layers = [m for m in module.modules() if isinstance(m, Attention)
              and type(m.processor) in (AttnProcessor, AttnProcessor2_0) and type(m.processor) is not want]
    if not layers:
        return None
    old = [layer.processor for layer in layers]
    for layer in layers:
        layer.set_processor(want())

    def undo():
        for layer, processor in zip(layers, old):
            layer.set_processor(processor)
    return undo


class _Runner:
    """A prepared module, called like the module: channels_last input, compiled forward."""

    def __init__(self, module: torch.nn.Module, call, channels_last: bool):
        self.module, self.call, self.channels_last = module, call, channels_last

    def __call__(self, x: torch.Tensor, t: torch.Tensor):
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.call(x, t)


class Session:
    """A fast-path mode applied to some models (made by :func:`session`)."""

    def __init__(self, fast: FastPath, device: torch.device, modules: list[torch.nn.Module]):
        self.fast, self.device, self.modules = fast, device, modules
        self._runners: dict[int, _Runner] = {}

    def _add(self, module: torch.nn.Module) -> None:
        call = module
        if self.fast.compile:
            call = torch.compile(module, mode=self.fast.compile_mode, dynamic=False)
        self._runners[id(module)] = _Runner(module, call, self.fast.channels_last)

    def runner(self, model):
        """What to call in place of ``model``: its prepared module, or a mix over prepared modules."""
        if isinstance(model, torch.nn.Module):
            return self._runners.get(id(model), model)
        if hasattr(model, "map_models"):
            return model.map_models(self.runner)
        return model

    def autocast(self):
        """Autocast as the mode says; a no-op for fp32.

        Inside one such block each weight is cast once (autocast's cache), so the engine opens it
        around a whole sampling loop or S_gen chain rather than around each UNet call.
        """
        kind = self.fast.autocast
        if kind is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_AUTOCAST[kind])

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory layout the prepared models run in."""
        if self.fast.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def adam_kwargs(self) -> dict:
        """Keyword arguments for ``torch.optim.Adam`` (fused, for-loop or PyTorch's default)."""
        if self.fast.fused_adam is None:
            return {}
        return {"fused": True} if self.fast.fused_adam else {"foreach": False, "fused": False}

    def sample(self, fn: Callable, x: torch.Tensor, *, key: tuple | None = None, observed: bool = False):
        """``fn(x)`` without gradients, under autocast; outputs in the standard (contiguous) layout.

        With CUDA graphs on, a ``key`` naming everything ``fn`` depends on besides ``x`` and the
        session's weights, and nothing ``observed`` (no callback or progress bar inside ``fn``),
        the call is captured once per key and input shape and replayed after.
        """
        x = self.layout(x)
        with torch.no_grad():
            if self.fast.cuda_graphs and key is not None and not observed and x.is_cuda and self.modules:
                from . import graphs

                return graphs.run(lambda inp: self._autocast_call(fn, inp), x, key=(key, self.fast),
                                  modules=self.modules)
            return _standard(self._autocast_call(fn, x))

    def _autocast_call(self, fn, x):
        with self.autocast():
            return fn(x)


def _standard(out):
    """Outputs (a tensor or a tuple of them) in the contiguous layout."""
    if isinstance(out, tuple):
        return tuple(o.contiguous() for o in out)
    return out.contiguous()


@contextlib.contextmanager
def session(*models, fast: FastPath | str | None = None, device: torch.device | str | None = None
            ) -> Iterator[Session]:
    """Apply ``fast`` to ``models`` (UNets, mixes, functions) for the length of a ``with`` block.

    Sets the backend flags, puts the modules in the mode's memory layout and swaps their attention
    processors as the mode says -- all undone on exit, also after an error, except the layout
    under ``cuda_graphs`` (see :class:`FastPath`) -- and compiles them. Call ``s.runner(model)``
    in place of each model inside the block.
    """
    modules = modules_of(*models)
    device = torch.device(device) if device is not None else device_of(*modules)
    fast = resolve(fast, device)
    with contextlib.ExitStack() as stack:
        stack.enter_context(backend_flags(fast, device))
        for module in modules:
            undo_layout = _layout(module, fast.channels_last)
            if undo_layout is not None and not fast.cuda_graphs:
                stack.callback(undo_layout)
            undo_attention = _attention(module, fast.attention)
            if undo_attention is not None:
                stack.callback(undo_attention)
        s = Session(fast, device, modules)
        for module in modules:
            s._add(module)
        yield s


def model_token(model) -> object:
    """What a model computes besides its weights: a mix's ratio or γ schedule, else its identity."""
    token = getattr(model, "cache_token", None)
    return token() if token is not None else id(model)
