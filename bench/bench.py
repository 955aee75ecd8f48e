#!/usr/bin/env python
"""dclip benchmark (issue #5): the engine's fast path against the original implementation's path.

Every figure is measured twice in the same run, on the same machine: in the ``reference`` mode
(fp32 without TF32, eager, batch 1, classic attention, no checkpointing, loss read back every
update -- the authors' code path) and in the engine's default ``fast`` mode (``dclip.runtime.fast``: on CUDA
bf16 autocast, TF32, channels_last, batching; on the CPU fp32 with batching). ``--max`` adds
``cuda-max`` (torch.compile + CUDA graphs) for the sampling phases. Speed-ups are ratios of medians.

Phases (per architecture): UNet forward throughput; precompute (DDIM inversion + reconstruction,
S_inv 40) per image; one fine-tune update (S_gen 6, batch 1) in full mode, full mode with gradient
checkpointing, and efficient mode; one edit (40 + 40 steps, one image); the authors' README recipe
end to end (N images: precompute, then 5 epochs of full-mode fine-tuning). FLOPs are counted with
``FlopCounterMode`` on one forward (on the meta device); training counts fwd + bwd = 3 forwards;
CLIP is not counted. Random weights: speed does not depend on them.

    python bench/bench.py                      # CPU: tiny preset in full + a scaled 256² probe
    python bench/bench.py --check-targets --max  # CUDA: the 256² CelebA-HQ architecture, full set

Writes bench/results-<device>.json (``--out``) and prints the tables.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runs from a checkout without installing dclip

import torch  # noqa: E402

from dclip.runtime.fast import MODES, resolve  # noqa: E402

T0, S_INV, S_GEN, N_ITER, README_IMAGES = 500, 40, 6, 5, 50  # the authors' README command line
GIB = 1024 ** 3

#: bf16 dense tensor-core peak, TFLOP/s (vendor figures), matched in order against the device name.
PEAK_BF16 = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0),
             ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0)]

TARGETS_NOTE = ("precompute ≥ 40 images/s needs 40 × 79 UNet forwards × {f:.3f} TFLOP = {need:.0f} TFLOP/s, "
                "above the {peak:.0f} TFLOP/s bf16 peak: the floor at 100% of peak is {floor:.1f} images/s.")


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------

class PeakMemory:
    """Peak memory during a block: CUDA allocated bytes, or the process's RSS sampled every 5 ms."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = self.rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.rss())


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fns: dict, device, repeats: int, warmup: int = 1) -> dict:
    """Time each of ``fns`` (mode -> callable), interleaved so that every mode sees the same machine.

    Returns mode -> (median seconds over ``repeats`` after ``warmup`` untimed runs, peak memory over
    its runs, its first output).
    """
    times = {m: [] for m in fns}
    peaks = dict.fromkeys(fns, 0)
    outs = dict.fromkeys(fns)
    for i in range(warmup + repeats):
        for mode, fn in fns.items():
            with PeakMemory(device) as mem:
                sync(device)
                start = time.perf_counter()
                out = fn()
                sync(device)
                elapsed = time.perf_counter() - start
            peaks[mode] = max(peaks[mode], mem.peak)
            outs[mode] = outs[mode] if outs[mode] is not None else out
            if i >= warmup:
                times[mode].append(elapsed)
            del out
    return {m: (statistics.median(times[m]), peaks[m], outs[m]) for m in fns}


def unet_kwargs(arch: str) -> dict:
    from dclip.models.layouts import ermongroup
    from dclip.models.unet import PRESETS

    return ermongroup.unet_kwargs(PRESETS[arch].config)


def forward_flops(unet_kwargs: dict) -> float:
    """FLOPs of one UNet forward at batch 1, counted on the meta device (no compute)."""
    from diffusers import UNet2DModel
    from torch.utils.flop_counter import FlopCounterMode

    size = unet_kwargs["sample_size"]
    with torch.device("meta"):
        model = UNet2DModel(**unet_kwargs)
        x, t = torch.zeros(1, 3, size, size), torch.full((1,), float(T0))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t)
    return float(counter.get_total_flops())


def device_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


# ------------------------------------------------------------------------------------------------
# The workload
# ------------------------------------------------------------------------------------------------

class Workload:
    """One architecture on one device: the UNets, a CLIP, images, latents and the FLOP count."""

    def __init__(self, arch: str, device: torch.device, clip_name: str, modes: list[str]):
        from dclip.models.unet import build_unet

        self.arch, self.device = arch, device
        kwargs = unet_kwargs(arch)
        self.size = kwargs["sample_size"]
        self.flops = forward_flops(kwargs)
        # One copy per mode (same seed, same weights): a mode's layout or captured graphs never
        # leak into another's measurement.
        first = build_unet(kwargs).to(device)
        self.unets = {mode: first if i == 0 else copy.deepcopy(first) for i, mode in enumerate(modes)}
        self.clip = make_clip(clip_name, device)
        gen = torch.Generator().manual_seed(0)
        self.images = torch.rand(64, 3, self.size, self.size, generator=gen) * 2 - 1

    def latents(self, n: int):
        from dclip.method.latents import Latents

        gen = torch.Generator().manual_seed(1)
        x0 = self.images[:n]
        return Latents(x0, torch.randn(x0.shape, generator=gen), x0, T0, S_INV)

    def config(self, mode: str = "full", **kw):
        from dclip.method.finetune import recipe

        return recipe("authors_readme", "face", "angry face", t0=T0, mode=mode, **kw)


def make_clip(name: str, device: torch.device):
    """``tiny`` (dclip's test CLIP) or ``vit-b-16`` (the paper's architecture, random weights: no download)."""
    from dclip.models.clip import _OPENAI_MEAN, _OPENAI_STD, _tokenizer, _wrap, tiny_clip

    if name == "tiny":
        return tiny_clip(device=device)
    import open_clip

    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None, device=device)
    return _wrap(model, _tokenizer("ViT-B-16-quickgelu"), _OPENAI_MEAN, _OPENAI_STD, device, "vit-b-16/random")


#: ``--ablate`` (CUDA): the fast mode with one switch turned back, for the forward and edit phases.
ABLATIONS = {"fast-nchw": MODES["cuda"].replace(name="cuda-nchw", channels_last=False),
             "fast-tf32": MODES["cuda"].replace(name="cuda-tf32", autocast=None)}


def mode_path(mode: str):
    """The ``fast=`` argument for a benchmark mode."""
    return {"reference": "reference", "fast": "auto", "max": "cuda-max", **ABLATIONS}[mode]


# ------------------------------------------------------------------------------------------------
# Phases: each gives, for a mode, (callable, units per call, FLOPs per unit)
# ------------------------------------------------------------------------------------------------

def phase_forward(w: Workload, mode: str):
    from dclip.method.ddim import predict_eps
    from dclip.runtime.fast import session

    fast = resolve(mode_path(mode), w.device)
    batch = fast.batch_size or 8
    x, unet = w.images[:batch].to(w.device), w.unets[mode]

    def run():
        with session(unet, fast=fast) as s:
            runner = s.runner(unet)
            return s.sample(lambda z: predict_eps(runner, z, T0), x, key=("bench-forward",))
    return run, batch, w.flops


def phase_precompute(w: Workload, mode: str, n: int):
    from dclip.method.latents import precompute

    images = w.images[:n]
    return lambda: precompute(w.unets[mode], images, T0, S_INV, fast=mode_path(mode)), n, (2 * S_INV - 1) * w.flops


def phase_update(w: Workload, mode: str, n: int, train_mode: str, checkpointing: bool):
    from dclip.method.finetune import finetune

    fast = resolve(mode_path(mode), w.device)
    if checkpointing:
        fast = fast.replace(grad_checkpointing=True)
    latents, config = w.latents(n), w.config(train_mode, n_iter=1)

    def run():
        finetune(w.unets[mode], latents, w.clip, config, fast=fast)  # the result (a model copy) is dropped
    return run, n, 3 * S_GEN * w.flops


def phase_edit(w: Workload, mode: str):
    from dclip.method.edit import edit

    x0, unet = w.images[:1].to(w.device), w.unets[mode]
    return lambda: edit(unet, unet, x0, T0, n_inv=S_INV, n_gen=S_INV, fast=mode_path(mode)), 1, \
        (2 * S_INV - 1) * w.flops


def phase_recipe(w: Workload, mode: str, n: int):
    from dclip.method.finetune import finetune
    from dclip.method.latents import precompute

    def run():
        latents = precompute(w.unets[mode], w.images[:n], T0, S_INV, fast=mode_path(mode))
        finetune(w.unets[mode], latents, w.clip, w.config("full"), fast=mode_path(mode))
    return run, 1, n * ((2 * S_INV - 1) + N_ITER * 3 * S_GEN) * w.flops


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------

UNITS = {"forward": "s/img", "precompute": "s/img", "update_full": "s/update", "update_full_ckpt": "s/update",
         "update_efficient": "s/update", "edit": "s/edit", "recipe": "s"}
REFERENCE_OF = {"update_full_ckpt": "update_full"}  # the original code has no checkpointing


def record(rows, arch, phase, mode, result, peak, *, estimated=False, note=""):
    seconds, mem, flops, _ = result
    tflops = flops / seconds / 1e12 if seconds > 0 else None
    rows.append({"arch": arch, "phase": phase, "mode": mode, "seconds": seconds, "unit": UNITS.get(phase, "s"),
                 "flops": flops, "tflops": tflops, "pct_peak": 100 * tflops / peak if peak and tflops else None,
                 "peak_mem_bytes": mem, "estimated": estimated, "note": note})


def rel_err(a, b) -> float:
    return float((a - b).norm() / b.norm())


def phase_plan(w: Workload, args, modes: list[str]) -> dict:
    """phase -> {mode: (callable, units per call, FLOPs per unit)}: ``max`` only for the sampling
    phases, the ablations only for forward and edit."""
    n_pre = min(args.images, 8 if w.device.type == "cuda" else 4)
    sampling = [m for m in modes if m not in ABLATIONS]
    plan = {"forward": {m: phase_forward(w, m) for m in modes},
            "precompute": {m: phase_precompute(w, m, n_pre) for m in sampling},
            "edit": {m: phase_edit(w, m) for m in modes}}
    train = [m for m in sampling if m != "max"]
    plan["update_full"] = {m: phase_update(w, m, args.updates, "full", False) for m in train}
    plan["update_full_ckpt"] = {m: phase_update(w, m, args.updates, "full", True) for m in train if m != "reference"}
    plan["update_efficient"] = {m: phase_update(w, m, args.updates, "efficient", False) for m in train}
    if not args.skip_recipe:
        plan["recipe"] = {m: phase_recipe(w, m, args.images) for m in train}
    return {k: v for k, v in plan.items() if not args.phases or k in args.phases}


def run_full(w: Workload, args, modes: list[str], rows: list, numerics: dict):
    """Every phase of ``w``, the modes interleaved run by run."""
    peak = device_peak(w.device)
    for phase, per_mode in phase_plan(w, args, modes).items():
        log(f"[{w.arch}] {phase}: {', '.join(per_mode)}")
        once = phase == "recipe"
        results = timed({m: fn for m, (fn, _, _) in per_mode.items()}, w.device,
                        repeats=args.recipe_repeats if once else args.repeats, warmup=0 if once else 1)
        for mode, (seconds, mem, out) in results.items():
            _, units, flops = per_mode[mode]
            record(rows, w.arch, phase, mode, (seconds / units, mem, flops, None), peak)
            log(f"  {mode:9s} {seconds / units:.4g} {UNITS[phase]}  peak {mem / GIB:.2f} GiB")
        ref = results.get("reference", (None, None, None))[2]
        for mode, (_, _, out) in results.items():
            if mode == "reference" or ref is None or phase not in ("precompute", "edit"):
                continue
            pairs = [("x_lat", out.x_lat, ref.x_lat), ("x_rec", out.x_rec, ref.x_rec)] if phase == "precompute" \
                else [("image", out, ref)]
            for name, a, b in pairs:
                numerics[f"{w.arch}/{phase}/{name}/{mode}_vs_reference"] = rel_err(a.float().cpu(), b.float().cpu())


def probe_calls(w: Workload, mode: str):
    """One batch-1 forward, and one forward+backward, of ``w``'s UNet under ``mode``."""
    from dclip.method.ddim import predict_eps
    from dclip.runtime.fast import session

    x, unet = w.images[:1].to(w.device), w.unets[mode]

    def fwd():
        with session(unet, fast=mode_path(mode)) as s, torch.no_grad(), s.autocast():
            predict_eps(s.runner(unet), s.layout(x), T0)

    def fwd_bwd():
        with session(unet, fast=mode_path(mode)) as s:
            with s.autocast():
                eps = predict_eps(s.runner(unet), s.layout(x), T0)
            eps.float().square().mean().backward()
        unet.zero_grad(set_to_none=True)
    return fwd, fwd_bwd


def run_probe(args, modes: list[str], rows: list, device: torch.device):
    """The 256² architecture on a slow device: one forward and one forward+backward per mode, scaled."""
    w = Workload("celeba_hq", device, "tiny", modes)
    log(f"[celeba_hq probe] {w.flops / 1e12:.3f} TFLOP per forward")
    calls = {m: probe_calls(w, m) for m in modes}
    calls[modes[0]][1]()  # one shared warm-up of the backward's allocations (each takes seconds)
    fwd = timed({m: c[0] for m, c in calls.items()}, device, args.probe_repeats, warmup=0)
    bwd = timed({m: c[1] for m, c in calls.items()}, device, args.probe_repeats, warmup=0)
    n, steps = README_IMAGES, 2 * S_INV - 1
    for mode in modes:
        (f_s, f_mem, _), (b_s, b_mem, _) = fwd[mode], bwd[mode]
        log(f"  {mode}: forward {f_s:.3g} s, forward+backward {b_s:.3g} s")
        estimates = {"forward": (f_s, f_mem, w.flops), "precompute": (steps * f_s, f_mem, steps * w.flops),
                     "update_full": (S_GEN * b_s, b_mem, 3 * S_GEN * w.flops),
                     "edit": (steps * f_s, f_mem, steps * w.flops),
                     "recipe": (n * (steps * f_s + N_ITER * S_GEN * b_s), max(f_mem, b_mem),
                                n * (steps + N_ITER * 3 * S_GEN) * w.flops)}
        for phase, (seconds, mem, flops) in estimates.items():
            record(rows, "celeba_hq", phase, mode, (seconds, mem, flops, None), None, estimated=phase != "forward",
                   note="" if phase == "forward" else "scaled from one batch-1 forward / forward+backward; CLIP not included")


# ------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _find(rows, arch, phase, mode):
    return next((r for r in rows if (r["arch"], r["phase"], r["mode"]) == (arch, phase, mode)), None)


def table(rows: list, modes: list[str], memory: str = "peak mem GB") -> str:
    """Markdown: time per unit in every mode, the speed-ups over the reference, TFLOP/s, memory."""
    others = [m for m in modes if m != "reference"]
    head = ["arch", "phase", "unit", *modes, *[f"{m} speed-up" for m in others],
            *[f"{m} TFLOP/s (% peak)" for m in modes], *[f"{m} {memory}" for m in modes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = list(dict.fromkeys((r["arch"], r["phase"]) for r in rows))
    for arch, phase in keys:
        cells = {m: _find(rows, arch, phase, m) for m in modes}
        ref = _find(rows, arch, REFERENCE_OF.get(phase, phase), "reference")
        est = any(c and c["estimated"] for c in cells.values())
        line = [arch, phase + (" (est.)" if est else ""), UNITS.get(phase, "s")]
        line += [f"{c['seconds']:.4g}" if c else "–" for c in cells.values()]
        line += [f"{ref['seconds'] / cells[m]['seconds']:.2f}×" if ref and cells[m] else "–" for m in others]
        line += [(f"{c['tflops']:.3g}" + (f" ({c['pct_peak']:.1f}%)" if c["pct_peak"] else "")) if c else "–"
                 for c in cells.values()]
        line += [f"{c['peak_mem_bytes'] / GIB:.2f}" if c else "–" for c in cells.values()]
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def check_targets(rows: list, device: torch.device, images: int, flops: float | None) -> list[tuple[str, bool, str]]:
    """The issue's targets, each (name, passed, detail). 256² CUDA targets only where measured."""
    checks = []
    fast = lambda phase: _find(rows, "celeba_hq", phase, "fast")  # noqa: E731
    ref = lambda phase: _find(rows, "celeba_hq", phase, "reference")  # noqa: E731
    best = lambda phase: min((r for r in (fast(phase), _find(rows, "celeba_hq", phase, "max")) if r),  # noqa: E731
                             key=lambda r: r["seconds"], default=None)
    if device.type == "cuda" and fast("forward"):
        if fast("recipe") and ref("recipe"):
            scaled = fast("recipe")["seconds"] * README_IMAGES / images
            checks.append(("README recipe ≤ 20 s", scaled <= 20, f"{scaled:.1f} s for {README_IMAGES} images"
                           + ("" if images == README_IMAGES else f" (scaled from {images})")))
            ratio = ref("recipe")["seconds"] / fast("recipe")["seconds"]
            checks.append(("README recipe ≥ 10× reference", ratio >= 10, f"{ratio:.1f}×"))
        for phase in ("update_full", "update_full_ckpt"):
            if fast(phase):
                gb = fast(phase)["peak_mem_bytes"] / 1e9
                checks.append((f"full-mode fine-tune peak memory ≤ 12 GB ({phase})", gb <= 12,
                               f"{gb:.2f} GB (10^9 bytes allocated by PyTorch)"))
        if best("edit"):
            checks.append(("one edit (40+40) ≤ 0.25 s", best("edit")["seconds"] <= 0.25,
                           f"{best('edit')['seconds']:.3f} s ({best('edit')['mode']})"))
        if best("precompute"):
            rate = 1 / best("precompute")["seconds"]
            peak = device_peak(device) or 989.0
            note = TARGETS_NOTE.format(f=flops / 1e12, need=40 * 79 * flops / 1e12, peak=peak,
                                       floor=peak * 1e12 / (79 * flops)) if flops else ""
            checks.append(("precompute ≥ 40 images/s", rate >= 40, f"{rate:.1f} images/s. {note}"))
    for phase in ("forward", "precompute", "update_full", "update_efficient", "edit", "recipe"):
        f, r = _find(rows, "tiny", phase, "fast"), _find(rows, "tiny", phase, "reference")
        if f and r and device.type == "cpu":
            ratio = r["seconds"] / f["seconds"]
            checks.append((f"CPU tiny {phase}: fast at least as fast as reference (5% noise allowed)",
                           ratio >= 0.95, f"{ratio:.2f}×"))
    return checks


def environment(args, device: torch.device, modes: list[str]) -> dict:
    import diffusers

    info = {"device": device.type, "python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        info.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), peak_bf16_tflops=device_peak(device))
    else:
        info["device_name"] = f"CPU ({info['cpu']}, {info['threads']} threads)"
    info["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    info["settings"].update(t0=T0, s_inv=S_INV, s_gen=S_GEN, n_iter=N_ITER,
                            modes={m: resolve(mode_path(m), device).__dict__ for m in modes})
    return info


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--arch", choices=["auto", "tiny", "celeba_hq", "both"], default="auto",
                   help="auto: celeba_hq on CUDA; on the CPU tiny plus a scaled celeba_hq probe")
    p.add_argument("--quick", action="store_true", help="8 recipe images, 1 repeat, 2 updates per timing")
    p.add_argument("--images", type=int, default=None,
                   help="images in the README recipe (default 50 on CUDA, 10 on the CPU; 8 with --quick)")
    p.add_argument("--updates", type=int, default=None, help="updates per fine-tune timing (default 4)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats after one warm-up (default 3)")
    p.add_argument("--recipe-repeats", type=int, default=1, help="timed runs of the recipe (no warm-up)")
    p.add_argument("--probe-repeats", type=int, default=1)
    p.add_argument("--no-probe", action="store_true", help="CPU: skip the 256² probe")
    p.add_argument("--max", action="store_true", help="CUDA: add the cuda-max mode (compile + CUDA graphs)")
    p.add_argument("--ablate", action="store_true",
                   help="CUDA: also time forward and edit with channels_last off (fast-nchw) and with fp32/TF32 (fast-tf32)")
    p.add_argument("--skip-recipe", action="store_true")
    p.add_argument("--phases", type=lambda s: s.split(","), default=None, help="comma list of phases to run")
    p.add_argument("--clip", choices=["auto", "tiny", "vit-b-16"], default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: OMP_NUM_THREADS or all cores)")
    p.add_argument("--check-targets", action="store_true", help="check the issue's targets; exit 1 if one fails")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results-<device>.json)")
    args = p.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.images = args.images or (8 if args.quick else 50 if cuda else 10)
    args.updates = args.updates or (2 if args.quick else 4)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def device_slug(device: torch.device) -> str:
    if device.type != "cuda":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("DCLIP_PROGRESS", "0")
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    arch = args.arch if args.arch != "auto" else ("celeba_hq" if device.type == "cuda" else "tiny")
    archs = ["tiny", "celeba_hq"] if arch == "both" else [arch]
    cuda = device.type == "cuda"
    modes = ["reference", "fast"] + (["max"] if args.max and cuda else []) + (list(ABLATIONS) if args.ablate and cuda else [])
    rows, numerics, flops = [], {}, None
    for a in archs:
        clip = args.clip if args.clip != "auto" else ("vit-b-16" if a == "celeba_hq" else "tiny")
        w = Workload(a, device, clip, modes)
        flops = w.flops if a == "celeba_hq" else flops
        run_full(w, args, modes, rows, numerics)
        del w
    if device.type == "cpu" and arch == "tiny" and not args.no_probe:
        run_probe(args, ["reference", "fast"], rows, device)
        flops = forward_flops(unet_kwargs("celeba_hq"))
    env = environment(args, device, modes)
    print(f"\ndclip benchmark on {env['device_name']} -- torch {env['torch']}, diffusers {env['diffusers']}, "
          f"{threads} threads; medians of {args.repeats} after 1 warm-up, modes interleaved; "
          f"recipe: {args.images} images, {args.recipe_repeats} run(s)\n")
    print(table(rows, modes, "peak alloc GiB" if device.type == "cuda" else "peak RSS GiB"))
    if numerics:
        print("\nfast vs reference, relative L2 error of the outputs:")
        for key, value in numerics.items():
            print(f"  {key}: {value:.2e}")
    checks = check_targets(rows, device, args.images, flops) if args.check_targets else []
    if checks:
        print("\ntargets:")
        for name, ok, detail in checks:
            print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    out = args.out or ROOT / "bench" / f"results-{device_slug(device)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "flops_per_forward_256": flops, "results": rows,
                               "numerics": numerics, "targets": [dict(name=n, passed=ok, detail=d) for n, ok, d in checks]},
                              indent=1, default=str))
    print(f"\nwrote {out}")
    return 1 if any(not ok for _, ok, _ in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
