"""The fast path (dclip.runtime.fast) computes what the reference mode computes.

Tolerances (relative error, L2 over the whole tensor):

* fp32 settings (batching, channels_last, SDPA vs classic attention): 1e-5 on latents, images and
  edits (measured ~1e-6); 1e-4 on the training gradient through an S_gen chain and CLIP (measured
  ~5e-6; more rounding steps, and CPUs with other SIMD widths sum in other orders). The CPU default
  is bit-identical to calling the model directly, as dclip always did.
* bf16 autocast (exercised here through CPU autocast, on CUDA below): 5e-2 on latents and images
  (measured 1-3e-2 on the random-weight tiny model), with the reconstruction as good as fp32's
  (mean error within 10%); 1e-1 on the training gradient (measured 3e-2).

CUDA-only settings (TF32, cuDNN autotuning, fused Adam, CUDA graphs, compile) are tested when a
GPU is present and skipped otherwise.
"""
import copy
import dataclasses

import pytest
import torch

import dclip
from dclip.models.clip import tiny_clip
from dclip.method.accelerated import generate_fast, invert_fast
from dclip.method.ddim import predict_eps
from dclip.method.edit import edit, edit_multi
from dclip.runtime.fast import MODES, FastPath, resolve, session
from dclip.method.finetune import FinetuneConfig, finetune
from dclip.data.images import sample_photos
from dclip.method.latents import cache_key, precompute

from conftest import rel_err

T0, N_INV, N_GEN = 300, 6, 3
FP32_RTOL = 1e-5
GRAD_RTOL = 1e-4
BF16_RTOL = 5e-2
BF16_GRAD_RTOL = 1e-1
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def unet():
    return dclip.load_unet("tiny")


@pytest.fixture(scope="module")
def other(unet):
    other = dclip.load_unet("tiny")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return other


@pytest.fixture(scope="module")
def images():
    return sample_photos(("grace_hopper", "astronaut", "coffee"), size=32)


@pytest.fixture(scope="module")
def reference(unet, images):
    return precompute(unet, images, T0, N_INV, fast="reference")


def updaterel_err(a, b, base):
    """Relative difference of two fine-tunes' weight updates (from ``base``), over all parameters.

    Adam divides by √v, so an element whose gradient is ~0 can move by up to lr on a 1e-7 change;
    the update as a whole is the meaningful thing to compare."""
    da = torch.cat([(p - p0).flatten() for p, p0 in zip(a.parameters(), base.parameters())])
    db = torch.cat([(q - p0).flatten() for q, p0 in zip(b.parameters(), base.parameters())])
    return ((da - db).norm() / db.norm()).item()


def config(**kw):
    base = dict(source="photo", target="sketch", t0=T0, n_gen=N_GEN, lr=2e-4, lr_step=1000, n_iter=1, seed=0)
    return FinetuneConfig(**{**base, **kw})


# --- the settings ---------------------------------------------------------------------------------

def test_auto_resolves_per_device_and_cuda_switches_are_dropped_on_cpu():
    assert resolve("auto", "cpu") == MODES["fp32"] == resolve(None, "cpu")  # DCLIP_CPU_BF16=0 (conftest)
    assert resolve("auto", "cuda").name == "cuda"
    on_cpu = resolve("cuda-max", "cpu")
    assert not (on_cpu.tf32 or on_cpu.cuda_graphs or on_cpu.cudnn_benchmark) and on_cpu.fused_adam is None
    assert on_cpu.autocast == "bf16" and on_cpu.channels_last and on_cpu.compile  # device-neutral switches stay
    ref = MODES["reference"]
    assert (ref.autocast, ref.attention, ref.batch_size, ref.sync_free, ref.compile) == (None, "classic", 1, False, False)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="unknown fast-path mode"):
        resolve("turbo")
    with pytest.raises(ValueError, match="autocast"):
        FastPath(autocast="fp8")
    with pytest.raises(ValueError, match="attention"):
        FastPath(attention="flash")
    with pytest.raises(ValueError, match="CUDA graphs"):
        FastPath(cuda_graphs=True, compile=True, compile_mode="reduce-overhead")
    with pytest.raises(TypeError):
        resolve(3)
    assert FastPath().replace(channels_last=True) == FastPath(name="custom", channels_last=True)


@pytest.mark.parametrize("api", ["legacy", "new"])
def test_tf32_switch_round_trips_through_either_api(api):
    from dclip.runtime.fast import _restore_tf32, _set_tf32, _tf32_state

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if api == "new" and not hasattr(cudnn, "conv"):
        pytest.skip("this PyTorch has no fp32_precision API")
    start = _tf32_state()
    try:
        if api == "new":  # a user who set the new API: the legacy switch can no longer be read
            matmul.fp32_precision, cudnn.conv.fp32_precision = "tf32", "ieee"
        before = _tf32_state()
        previous = _set_tf32(True)
        assert previous == before
        state = _tf32_state()
        assert state[1:] in ((True, True), ("tf32", "tf32"))
        _set_tf32(False)
        assert _tf32_state()[1:] in ((False, False), ("ieee", "ieee"))
        _restore_tf32(previous)
        assert _tf32_state() == before
    finally:
        _restore_tf32(start)


def test_session_restores_layout_and_attention_even_after_an_error(unet):
    from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

    def processors():
        return {type(m.processor) for m in unet.modules() if isinstance(m, Attention)}

    weight = unet.conv_in.weight
    assert processors() == {AttnProcessor2_0} and weight.is_contiguous()
    with pytest.raises(RuntimeError, match="boom"):
        with session(unet, fast=MODES["reference"].replace(channels_last=True)) as s:
            assert processors() == {AttnProcessor}
            assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
            assert s.runner(unet).module is unet
            raise RuntimeError("boom")
    assert processors() == {AttnProcessor2_0} and unet.conv_in.weight.is_contiguous()


def test_session_maps_mixes_to_prepared_runners(unet, other):
    mix = dclip.RatioMix(unet, other, 0.5)
    with session(mix, fast="fp32") as s:
        assert {id(m) for m in s.modules} == {id(unet), id(other)}
        mapped = s.runner(mix)
        assert isinstance(mapped, dclip.RatioMix) and mapped.ratio == 0.5
        assert s.runner(len) is len  # a plain function passes through


def test_mixes_take_the_integer_time_without_reading_a_tensor(unet, other, images):
    t = torch.full((images.shape[0],), 250.0)
    for mix in (dclip.RatioMix(unet, other, 0.3), dclip.ThresholdMix([unet, other], {200: [1, 0], 0: [0.5, 0.5]})):
        with torch.no_grad():
            torch.testing.assert_close(mix.eps_at(images, 250), mix(images, t), rtol=0, atol=0)
            torch.testing.assert_close(predict_eps(mix, images, 250), mix(images, t), rtol=0, atol=0)


def test_eps_comes_back_in_the_latents_dtype():
    def half_model(x, t):
        return x.to(torch.bfloat16)

    assert predict_eps(half_model, torch.zeros(1, 3, 4, 4), 10).dtype == torch.float32


# --- precompute -----------------------------------------------------------------------------------

def test_cpu_default_is_bit_identical_to_the_plain_loops(unet, images):
    fast = precompute(unet, images, T0, N_INV)  # fast="auto" -> "fp32"
    x_lat = dclip.invert(unet, images, T0, N_INV)
    with torch.no_grad():
        x_rec = dclip.generate(unet, x_lat, T0, N_INV)
    torch.testing.assert_close(fast.x_lat, x_lat, rtol=0, atol=0)
    torch.testing.assert_close(fast.x_rec, x_rec, rtol=0, atol=0)


@pytest.mark.parametrize("settings", [
    FastPath(),                                  # SDPA, batched by 8
    FastPath(batch_size=2),                      # uneven batches
    FastPath(channels_last=True),
    FastPath(attention="classic", batch_size=3),
])
def test_fp32_settings_match_the_reference(unet, images, reference, settings):
    fast = precompute(unet, images, T0, N_INV, fast=settings)
    assert rel_err(fast.x_lat, reference.x_lat) < FP32_RTOL
    assert rel_err(fast.x_rec, reference.x_rec) < FP32_RTOL
    assert fast.x_lat.is_contiguous() and fast.x_rec.is_contiguous()


def test_bf16_autocast_is_within_its_tolerance_and_reconstructs_as_well(unet, images, reference):
    bf16 = precompute(unet, images, T0, N_INV, fast=FastPath(autocast="bf16"))
    assert bf16.x_lat.dtype == torch.float32
    assert rel_err(bf16.x_lat, reference.x_lat) < BF16_RTOL
    assert rel_err(bf16.x_rec, reference.x_rec) < BF16_RTOL
    err_bf16, err_fp32 = ((x.x_rec - images).abs().mean().item() for x in (bf16, reference))
    assert err_bf16 < 1.1 * err_fp32


def test_cache_key_separates_autocast_precision_only(unet, images):
    assert cache_key(unet, images, T0, N_INV) == cache_key(unet, images, T0, N_INV, autocast=None)
    assert cache_key(unet, images, T0, N_INV, autocast="bf16") != cache_key(unet, images, T0, N_INV)


def test_low_level_invert_and_generate_take_a_fast_path(unet, images):
    plain = dclip.invert(unet, images, T0, N_INV)
    ref = invert_fast(unet, images, T0, N_INV, fast="reference")
    assert rel_err(ref, plain) < FP32_RTOL
    with torch.no_grad():
        gen_plain = dclip.generate(unet, plain, T0, N_INV)
    gen_cl = generate_fast(unet, plain, T0, N_INV, fast=FastPath(channels_last=True))
    assert rel_err(gen_cl, gen_plain) < FP32_RTOL


# --- editing --------------------------------------------------------------------------------------

def test_edit_batching_and_modes_match_the_reference(unet, other, images):
    ref = edit(unet, other, images, T0, n_inv=N_INV, n_gen=N_INV, ratio=0.5, fast="reference")
    for settings in ("fp32", FastPath(batch_size=2, channels_last=True)):
        x = edit(unet, other, images, T0, n_inv=N_INV, n_gen=N_INV, ratio=0.5, fast=settings)
        assert rel_err(x, ref) < FP32_RTOL
    one_by_one = edit(unet, other, images, T0, n_inv=N_INV, n_gen=N_INV, ratio=0.5, batch_size=1, fast="fp32")
    assert rel_err(one_by_one, ref) < FP32_RTOL


def test_edit_multi_and_latent_reuse_on_the_fast_path(unet, other, images):
    gammas = {200: [1, 0], 0: [0.5, 0.5]}
    ref = edit_multi(unet, [unet, other], images, T0, gammas, n_inv=N_INV, n_gen=N_INV, fast="reference")
    x = edit_multi(unet, [unet, other], images, T0, gammas, n_inv=N_INV, n_gen=N_INV,
                   fast=FastPath(channels_last=True, batch_size=2))
    assert rel_err(x, ref) < FP32_RTOL
    x_lat = dclip.invert(unet, images, T0, N_INV)
    reused = edit(unet, other, images, T0, n_inv=N_INV, n_gen=N_INV, x_lat=x_lat, fast="reference")
    direct = edit(unet, other, images, T0, n_inv=N_INV, n_gen=N_INV)
    assert rel_err(reused, direct) < FP32_RTOL


# --- fine-tuning ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


@pytest.fixture(scope="module")
def latents(unet, images):
    return precompute(unet, images[:2], T0, N_INV)


@pytest.mark.parametrize("mode", ["full", "efficient"])
def test_sync_free_history_equals_the_per_update_history(unet, latents, clip, mode):
    seen = []
    quiet = finetune(unet, latents, clip, config(mode=mode, n_iter=2), fast="fp32")
    watched = finetune(unet, latents, clip, config(mode=mode, n_iter=2), fast="fp32", callback=seen.append)
    assert quiet.history == watched.history == seen
    assert len(quiet.history) == 4 and all(isinstance(row["loss"], float) for row in quiet.history)
    for p, q in zip(quiet.model.parameters(), watched.model.parameters()):
        assert torch.equal(p, q)


def chain_gradient(unet, latents, clip, settings):
    """The gradient of eq. 10 through one full-mode S_gen chain, run under ``settings``."""
    from dclip.method.ddim import denoise_step, generation_pairs
    from dclip.method.finetune import _Objective

    model = copy.deepcopy(unet).train()
    with session(model, fast=settings) as s:
        if s.fast.grad_checkpointing:
            model.enable_gradient_checkpointing()
        x = s.layout(latents.x_lat)
        with s.autocast():
            for t, t_next in generation_pairs(T0, N_GEN):
                x = denoise_step(s.runner(model), x, t, t_next)[0]
        _Objective(clip, config(), None)(latents.x0, x)["loss"].backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("settings", ["reference", FastPath(channels_last=True), FastPath(grad_checkpointing=True)])
def test_training_gradient_matches_the_reference(unet, latents, clip, settings):
    ref = chain_gradient(unet, latents, clip, "fp32")
    assert rel_err(chain_gradient(unet, latents, clip, settings), ref) < GRAD_RTOL


def test_bf16_training_gradient_is_within_its_tolerance(unet, latents, clip):
    ref = chain_gradient(unet, latents, clip, "fp32")
    assert rel_err(chain_gradient(unet, latents, clip, FastPath(autocast="bf16")), ref) < BF16_GRAD_RTOL


@pytest.mark.parametrize("settings", ["reference", FastPath(channels_last=True)])
def test_finetune_fast_settings_follow_the_reference(unet, latents, clip, settings):
    ref = finetune(unet, latents, clip, config(), fast="fp32")
    other = finetune(unet, latents, clip, config(), fast=settings)
    assert other.losses() == pytest.approx(ref.losses(), rel=1e-4)
    # Adam's first steps are ≈ lr·sign(g): elements whose gradient is ~0 flip on 1e-7 changes, so
    # the updates agree as a whole (the gradients above agree to 1e-5), not element by element.
    assert updaterel_err(other.model, ref.model, unet) < 0.1
    assert all(p.is_contiguous() for p in other.model.parameters())


def test_finetune_bf16_autocast_trains_on_cpu(unet, latents, clip):
    result = finetune(unet, latents, clip, config(n_iter=2), fast=FastPath(autocast="bf16"))
    ref = finetune(unet, latents, clip, config(n_iter=2), fast="fp32")
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert result.losses() == pytest.approx(ref.losses(), rel=BF16_RTOL)


# --- CUDA -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpu_unet():
    return dclip.load_unet("tiny").cuda()


@cuda
def test_cuda_default_is_bf16_within_tolerance(gpu_unet, images):
    ref = precompute(gpu_unet, images, T0, N_INV, fast="reference")
    fast = precompute(gpu_unet, images, T0, N_INV)  # auto -> cuda: bf16, TF32, channels_last
    assert fast.x_lat.device.type == "cpu" and fast.x_lat.dtype == torch.float32
    assert rel_err(fast.x_lat, ref.x_lat) < BF16_RTOL and rel_err(fast.x_rec, ref.x_rec) < BF16_RTOL
    fp32 = precompute(gpu_unet, images, T0, N_INV, fast=MODES["reference"].replace(channels_last=True, batch_size=8))
    assert rel_err(fp32.x_lat, ref.x_lat) < 1e-4  # cuDNN may pick other fp32 algorithms for NHWC


@cuda
def test_cuda_session_restores_tf32_flags(gpu_unet):
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    with session(gpu_unet, fast="cuda"):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.benchmark
    with session(gpu_unet, fast="reference"):
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark) == before


@cuda
def test_cuda_graphs_replay_matches_eager_and_sees_weight_updates(images):
    from dclip.runtime import graphs

    graphs.clear()
    model = dclip.load_unet("tiny").cuda()
    x = images.cuda()
    eager_mode = MODES["cuda"]
    graphed = eager_mode.replace(cuda_graphs=True)
    eager = invert_fast(model, x, T0, N_INV, fast=eager_mode)
    first = invert_fast(model, x, T0, N_INV, fast=graphed)    # warm-up + capture
    assert model.conv_in.weight.is_contiguous(memory_format=torch.channels_last)  # left for the replay
    replay = invert_fast(model, x, T0, N_INV, fast=graphed)   # replay
    assert rel_err(first, eager) < 1e-3 and rel_err(replay, eager) < 1e-3
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)  # in place: the captured graph reads the new values
    updated_eager = invert_fast(model, x, T0, N_INV, fast=eager_mode)
    updated_replay = invert_fast(model, x, T0, N_INV, fast=graphed)
    assert rel_err(updated_replay, updated_eager) < 1e-3 and rel_err(updated_replay, replay) > 1e-4
    graphs.clear()


@cuda
def test_cuda_edit_and_precompute_with_graphs(gpu_unet, images):
    mode = MODES["cuda"].replace(cuda_graphs=True)
    ref = edit(gpu_unet, gpu_unet, images.cuda(), T0, n_inv=N_INV, n_gen=N_INV, fast="cuda")
    for _ in range(2):
        x = edit(gpu_unet, gpu_unet, images.cuda(), T0, n_inv=N_INV, n_gen=N_INV, fast=mode)
        assert rel_err(x, ref) < 1e-3
    lat = precompute(gpu_unet, images, T0, N_INV, fast=mode, batch_size=2)
    lat_ref = precompute(gpu_unet, images, T0, N_INV, fast="cuda", batch_size=2)
    assert rel_err(lat.x_rec, lat_ref.x_rec) < 1e-3


@cuda
def test_cuda_training_gradient_within_bf16_tolerance(gpu_unet, images):
    clip = tiny_clip(device="cuda")
    lat = precompute(gpu_unet, images[:2], T0, N_INV, fast="reference")
    lat = dataclasses.replace(lat, x0=lat.x0.cuda(), x_lat=lat.x_lat.cuda())
    ref = chain_gradient(gpu_unet, lat, clip, "reference")
    fast = chain_gradient(gpu_unet, lat, clip, MODES["cuda"].replace(grad_checkpointing=True))
    assert rel_err(fast, ref) < BF16_GRAD_RTOL


@cuda
@pytest.mark.parametrize("mode", ["full", "efficient"])
def test_cuda_finetune_fast_path_trains_like_the_reference(gpu_unet, images, mode):
    clip = tiny_clip(device="cuda")
    lat = precompute(gpu_unet, images[:2], T0, N_INV, fast="reference")
    cfg = config(mode=mode, n_iter=2)
    ref = finetune(gpu_unet, lat, clip, cfg, fast="reference")
    fast = finetune(gpu_unet, lat, clip, cfg, fast=MODES["cuda"].replace(grad_checkpointing=True))
    assert fast.losses() == pytest.approx(ref.losses(), rel=BF16_RTOL)
    assert all(p.is_contiguous() and p.dtype == torch.float32 for p in fast.model.parameters())


@cuda
def test_cuda_compiled_sampling_matches_eager(gpu_unet, images):
    compiled = MODES["cuda"].replace(compile=True)
    x = invert_fast(gpu_unet, images.cuda(), T0, N_INV, fast=compiled)
    ref = invert_fast(gpu_unet, images.cuda(), T0, N_INV, fast="cuda")
    assert rel_err(x, ref) < BF16_RTOL


# --- CUDA-graph bookkeeping, with a stand-in for the CUDA API (the real capture is tested above) ---

class _FakeCuda:
    """Streams and graphs that do nothing: capture runs the function once, replay runs nothing."""

    class Stream:
        def wait_stream(self, other):
            pass

    class CUDAGraph:
        replays = 0

        def replay(self):
            type(self).replays += 1

    @staticmethod
    def current_stream():
        return _FakeCuda.Stream()

    @staticmethod
    def stream(_):
        import contextlib

        return contextlib.nullcontext()

    graph = stream


def test_graph_cache_captures_once_per_key_and_recaptures_on_new_weights(monkeypatch, unet):
    from dclip.runtime import graphs

    monkeypatch.setattr(graphs.torch, "cuda", _FakeCuda)
    graphs.clear()
    model = copy.deepcopy(unet)
    calls = []

    def fn(x):
        calls.append(1)
        return x * 2, x + 1

    x = torch.ones(2, 3, 4, 4)
    out = graphs.run(fn, x, key=("k",), modules=[model])
    assert len(calls) == 2 and torch.equal(out[0], x * 2)        # warm-up + capture
    again = graphs.run(fn, x, key=("k",), modules=[model])
    assert len(calls) == 2 and _FakeCuda.CUDAGraph.replays == 1  # replayed, not re-run
    assert torch.equal(again[1], x + 1) and again[1].data_ptr() != out[1].data_ptr()
    graphs.run(fn, x, key=("other",), modules=[model])
    graphs.run(fn, x[:1], key=("k",), modules=[model])
    assert len(calls) == 6                                       # new key, new shape: captured
    model.load_state_dict(unet.state_dict(), assign=True)        # new parameter tensors
    graphs.run(fn, x, key=("k",), modules=[model])
    assert len(calls) == 8
    for i in range(graphs.MAX_GRAPHS + 2):
        graphs.run(fn, x, key=("evict", i), modules=[model])
    assert len(graphs._CACHE) == graphs.MAX_GRAPHS
    graphs.clear()


def test_the_fast_path_used_is_recorded_with_the_weights(unet, latents, clip, tmp_path):
    import json

    from dclip.method.finetune import save_finetuned

    result = finetune(unet, latents, clip, config(), fast="reference")
    assert result.fast == MODES["reference"]
    meta = json.loads(save_finetuned(result, tmp_path / "m").with_suffix(".json").read_text())
    assert meta["fast_path"]["name"] == "reference" and meta["fast_path"]["batch_size"] == 1
