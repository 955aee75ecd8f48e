"""bf16 autocast on the CPU (dclip.runtime.fast): chosen by "auto" only where the CPU runs bf16 natively, never in the
profiles whose numbers are checked or published (toy, toy-check, smoke) nor in the reference mode, and an edit in
bf16 stays within the stated tolerance of fp32 on the tiny model.

Native bf16 is simulated (``DCLIP_CPU_BF16=1``, or the detection's inputs patched), so these tests give the same
answers on every CPU; bf16 autocast itself runs on any CPU (emulated where it is not native).
"""
import pytest
import torch

from dclip.editor.mix_edit import generate_mix
from dclip.method.edit import edit
from dclip.models.unet import load_unet
from dclip.notebook.profiles import PROFILES
from dclip.runtime import fast as fast_module
from dclip.runtime.fast import MODES, cpu_bf16_native, fixed_precision, resolve

from conftest import rel_err

#: An edit's relative L2 distance from fp32 under bf16 autocast on the random-weight tiny model (measured 1-3e-2;
#: the same bound as tests/test_fast.py's BF16_RTOL).
EDIT_BF16_RTOL = 5e-2


def _pair():
    """The tiny UNet and a perturbed copy (a stand-in fine-tune)."""
    original, tuned = load_unet("tiny"), load_unet("tiny")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return original, tuned


@pytest.fixture
def native(monkeypatch):
    monkeypatch.setenv("DCLIP_CPU_BF16", "1")


@pytest.fixture
def detect(monkeypatch):
    """The detection with its inputs under the test's control: capability AVX512 and both CPU flags set."""
    monkeypatch.delenv("DCLIP_CPU_BF16", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    return monkeypatch


def test_detection_needs_the_cpu_flag_and_kernels_allowed_to_use_it(detect):
    assert cpu_bf16_native()
    detect.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not cpu_bf16_native()  # AVX-512 without BF16 (e.g. Skylake-X): bf16 is emulated there
    detect.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert cpu_bf16_native()  # AMX tiles (Sapphire Rapids and later)
    detect.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_bf16_native()  # oneDNN held below AVX-512 BF16
    detect.delenv("ONEDNN_MAX_CPU_ISA")
    detect.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not cpu_bf16_native()  # ATEN_CPU_CAPABILITY=avx2


def test_the_override_wins_and_a_bad_value_is_a_clear_error(detect):
    detect.setenv("DCLIP_CPU_BF16", "0")
    assert not cpu_bf16_native()
    detect.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    detect.setenv("DCLIP_CPU_BF16", "1")
    assert cpu_bf16_native()
    detect.setenv("DCLIP_CPU_BF16", "yes")
    with pytest.raises(ValueError, match="DCLIP_CPU_BF16 must be 0 or 1"):
        cpu_bf16_native()


def test_auto_is_bf16_only_on_a_native_cpu(monkeypatch):
    monkeypatch.setenv("DCLIP_CPU_BF16", "1")
    assert resolve("auto", "cpu") == MODES["cpu-bf16"] and MODES["cpu-bf16"].autocast == "bf16"
    monkeypatch.setenv("DCLIP_CPU_BF16", "0")
    assert resolve("auto", "cpu") == MODES["fp32"] and resolve(None, "cpu").autocast is None


def test_checked_profiles_and_the_reference_mode_stay_fp32_on_a_native_cpu(native):
    for name in ("toy", "toy-check", "smoke"):
        assert resolve(PROFILES[name].fast, "cpu").autocast is None, name
    assert resolve(PROFILES["paper"].fast, "cpu").autocast == "bf16"  # the paper profile takes the fast path
    assert resolve("reference", "cpu").autocast is None and resolve(fixed_precision("reference", "fp32")).name == \
        "reference"
    # on CUDA a checked profile keeps the CUDA fast path (its numbers are not stored from CUDA runs)
    assert resolve(PROFILES["toy"].fast, "cuda").name == "cuda"
    with pytest.raises(ValueError, match="precision must be"):
        fixed_precision("auto", "bf16")


def test_a_toy_context_edits_and_fine_tunes_in_fp32_on_a_native_cpu(native, monkeypatch, quick_context):
    """What the context's edits and fine-tunes ask the engine for, with native bf16 simulated."""
    seen = []
    real_session = fast_module.session

    def recording(*models, fast=None, device=None):
        seen.append(resolve(fast, device or "cpu").autocast)
        return real_session(*models, fast=fast, device=device)

    for module in ("dclip.method.edit", "dclip.method.finetune", "dclip.method.latents", "dclip.method.accelerated"):
        monkeypatch.setattr(f"{module}.session", recording)
    ctx = quick_context
    model = ctx.finetune("sketch")
    x0 = torch.rand(1, 3, ctx.profile.image_size, ctx.profile.image_size) * 2 - 1
    ctx.edit(model, x0, 300, "celeba_hq")
    assert seen and set(seen) == {None}


def test_an_edit_in_bf16_stays_within_tolerance_of_fp32():
    original, tuned = _pair()
    x0 = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    fp32 = edit(original, tuned, x0, 300, n_inv=6, n_gen=6, fast="fp32")
    bf16 = edit(original, tuned, x0, 300, n_inv=6, n_gen=6, fast="cpu-bf16")
    assert bf16.dtype == torch.float32  # latents and the DDIM update stay fp32
    assert 0 < rel_err(bf16, fp32) < EDIT_BF16_RTOL  # > 0: the bf16 path really ran


def test_the_editor_generation_runs_in_the_mode_it_is_given():
    original, tuned = _pair()
    x_lat = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    fp32 = generate_mix(original, [tuned], x_lat, 300, 5, 1.0, [1.0], fast="fp32")
    again = generate_mix(original, [tuned], x_lat, 300, 5, 1.0, [1.0], fast="fp32-off-cuda")
    bf16 = generate_mix(original, [tuned], x_lat, 300, 5, 1.0, [1.0], fast="cpu-bf16")
    assert torch.equal(fp32, again)
    assert 0 < rel_err(bf16, fp32) < EDIT_BF16_RTOL
