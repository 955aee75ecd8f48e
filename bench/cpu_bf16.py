#!/usr/bin/env python
"""bf16 on the CPU (issue 34): the 256² UNet's forward, one edit and one fine-tune update, fp32 against bf16 autocast.

Modes, interleaved run by run on the same machine (random weights of the 256² CelebA-HQ architecture; speed does
not depend on them):

* ``fp32``: the CPU fast path without native bf16 (plain eager fp32, what every checked number uses);
* ``bf16``: bf16 autocast of the UNet calls only: the ``cpu-bf16`` mode ``"auto"`` picks on a CPU with native bf16;
* ``bf16+cl``: bf16 autocast and channels_last;
* ``fp32+cl``: channels_last alone, to see what the layout gives by itself;
* ``--compile`` adds ``bf16+cl+compile`` (``torch.compile``, inductor) for the forward, with its compile time.

Phases: one batch-1 UNet forward; one edit (S_inv + S_gen DDIM steps, ``--steps`` each, default 40 = the paper's
test time); one full-mode fine-tune update (S_gen 6 with backward; the tiny CLIP, so that the UNet's share is
timed). Besides the medians it reports, per bf16 mode, the relative L2 distance of the edit and of the update's
gradient from fp32, and whether this CPU runs bf16 natively (:func:`dclip.runtime.fast.cpu_bf16_native`).

    python bench/cpu_bf16.py                 # ~10 min on 2 cores
    python bench/cpu_bf16.py --steps 10 --repeats 1 --no-update   # a quick look

Writes bench/results-cpu-bf16.json (``--out``) and prints the table.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dclip.runtime.fast import MODES, FastPath, cpu_bf16_native, session  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from bench import rel_err, timed, unet_kwargs  # noqa: E402  (the same timing and error as the engine benchmark)

T0, S_GEN_TRAIN = 500, 6

MODES_TIMED = {"fp32": MODES["fp32"], "bf16": MODES["cpu-bf16"],
               "bf16+cl": FastPath("bf16+cl", autocast="bf16", channels_last=True), "fp32+cl": FastPath("fp32+cl", channels_last=True)}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def interleaved(fns: dict, repeats: int, warmup: int) -> tuple[dict, dict]:
    """mode -> median seconds, and mode -> first output: bench.py's :func:`timed` (the modes run in turn)."""
    results = timed(fns, torch.device("cpu"), repeats=repeats, warmup=warmup)
    return {m: r[0] for m, r in results.items()}, {m: r[2] for m, r in results.items()}


def unet_256():
    from dclip.models.unet import build_unet

    return build_unet(unet_kwargs("celeba_hq"))


def forward_fns(unet, x, modes):
    from dclip.method.ddim import predict_eps

    def call(fast):
        def run():
            with session(unet, fast=fast) as s:
                runner = s.runner(unet)
                return s.sample(lambda z: predict_eps(runner, z, T0), x)
        return run
    return {m: call(fast) for m, fast in modes.items()}


def edit_fns(unet, tuned, x, steps, modes):
    from dclip.method.edit import edit

    return {m: (lambda fast=fast: edit(unet, tuned, x, T0, n_inv=steps, n_gen=steps, fast=fast))
            for m, fast in modes.items()}


def update_fns(unet, x0, modes):
    """One full-mode update through an S_gen chain and the tiny CLIP: returns the gradient (flattened)."""
    from dclip.method.ddim import denoise_step, generation_pairs
    from dclip.method.finetune import FinetuneConfig, _Objective
    from dclip.models.clip import tiny_clip

    clip = tiny_clip()
    config = FinetuneConfig(source="face", target="angry face", t0=T0, n_gen=S_GEN_TRAIN, n_iter=1)
    x_lat = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))

    def call(fast):
        def run():
            model = unet.train()
            model.zero_grad(set_to_none=True)
            with session(model, fast=fast) as s:
                x = s.layout(x_lat)
                with s.autocast():
                    for t, t_next in generation_pairs(T0, S_GEN_TRAIN):
                        x = denoise_step(s.runner(model), x, t, t_next)[0]
                _Objective(clip, config, None)(x0, x.contiguous())["loss"].backward()
            grad = torch.cat([p.grad.flatten() for p in model.parameters()])
            model.zero_grad(set_to_none=True)
            return grad
        return run
    return {m: call(fast) for m, fast in modes.items()}


def compiled_forward(unet, x):
    """(compile + first call seconds, steady median seconds, output) of bf16+cl under torch.compile, or the error."""
    from dclip.method.ddim import predict_eps

    fast = MODES_TIMED["bf16+cl"].replace(name="bf16+cl+compile", compile=True)
    try:
        with session(unet, fast=fast) as s:
            runner = s.runner(unet)
            start = time.perf_counter()
            out = s.sample(lambda z: predict_eps(runner, z, T0), x)
            first = time.perf_counter() - start
            steady = []
            for _ in range(3):
                start = time.perf_counter()
                s.sample(lambda z: predict_eps(runner, z, T0), x)
                steady.append(time.perf_counter() - start)
        return first, sorted(steady)[1], out
    except Exception as err:  # no C++ compiler, an inductor limitation: reported, not fatal
        return None, None, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40, help="S_inv = S_gen of the timed edit (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed forwards per mode (edits and updates: 1)")
    p.add_argument("--no-update", action="store_true", help="skip the fine-tune update")
    p.add_argument("--compile", action="store_true", help="also time the forward under torch.compile")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results-cpu-bf16.json")
    args = p.parse_args(argv)
    os.environ.setdefault("DCLIP_PROGRESS", "0")
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    torch.manual_seed(0)
    unet = unet_256().eval()
    tuned = copy.deepcopy(unet)
    with torch.no_grad():
        for q in tuned.parameters():
            q.mul_(1.01)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows, numerics = {}, {}

    log("forward (batch 1) ...")
    rows["forward"], outs = interleaved(forward_fns(unet, x, MODES_TIMED), args.repeats, warmup=1)
    numerics["forward"] = {m: rel_err(o, outs["fp32"]) for m, o in outs.items() if m != "fp32"}
    log(f"edit ({args.steps} + {args.steps} steps) ...")
    edit_modes = {m: MODES_TIMED[m] for m in ("fp32", "bf16", "bf16+cl")}
    rows["edit"], outs = interleaved(edit_fns(unet, tuned, x, args.steps, edit_modes), 1, warmup=0)
    numerics["edit"] = {m: rel_err(o, outs["fp32"]) for m, o in outs.items() if m != "fp32"}
    if not args.no_update:
        log("fine-tune update (S_gen 6, backward) ...")
        update_modes = {m: MODES_TIMED[m] for m in ("fp32", "bf16", "bf16+cl")}
        rows["update"], outs = interleaved(update_fns(unet, x, update_modes), 1, warmup=1)
        numerics["gradient"] = {m: rel_err(o, outs["fp32"]) for m, o in outs.items() if m != "fp32"}
    compiled = None
    if args.compile:
        log("forward under torch.compile ...")
        first, steady, out = compiled_forward(unet, x)
        compiled = {"first_call_s": first, "steady_s": steady,
                    "rel_err": rel_err(out, forward_fns(unet, x, {"fp32": MODES_TIMED["fp32"]})["fp32"]())
                    if first is not None else None, "error": out if first is None else None}

    env = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
           "cpu_bf16_native": cpu_bf16_native(), "steps": args.steps, "repeats": args.repeats}
    modes = list(MODES_TIMED)
    lines = [f"CPU bf16 on {env['cpu']} ({env['capability']}, native bf16: {env['cpu_bf16_native']}), "
             f"{env['threads']} threads, torch {env['torch']}; medians, modes interleaved",
             "", "| phase | " + " | ".join(f"{m} s" for m in modes) + " | " +
             " | ".join(f"{m} speed-up" for m in modes[1:]) + " | rel. diff. to fp32 |",
             "|---|" + "---|" * (2 * len(modes))]
    for phase, times in rows.items():
        diffs = numerics.get("gradient" if phase == "update" else phase, {})
        lines.append(f"| {phase} | " + " | ".join(f"{times[m]:.3g}" if m in times else "–" for m in modes) + " | "
                     + " | ".join(f"{times['fp32'] / times[m]:.2f}×" if m in times else "–" for m in modes[1:])
                     + " | " + ", ".join(f"{m} {v:.1e}" for m, v in diffs.items()) + " |")
    if compiled:
        lines.append("")
        lines.append(f"torch.compile (bf16+cl): {compiled['error']}" if compiled["error"] else
                     f"torch.compile (bf16+cl): first call {compiled['first_call_s']:.1f} s, then "
                     f"{compiled['steady_s']:.3g} s per forward ({rows['forward']['fp32'] / compiled['steady_s']:.2f}× "
                     f"fp32), rel. diff. {compiled['rel_err']:.1e}")
    print("\n".join(lines))
    args.out.write_text(json.dumps({"environment": env, "seconds": rows, "rel_diff_to_fp32": numerics,
                                    "compile": compiled}, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
