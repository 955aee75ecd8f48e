"""LoRA adapters and the accelerations of issue 24: adapters save, load and mix (eq. 14 and the degree of change)
without a model copy per adapter; an adapter edit is judged like the full fine-tune on a small toy case; each
acceleration changes the amount of work as it says (UNet evaluations, updates)."""
import json
from dataclasses import asdict

import pytest
import torch

from dclip.method.adapters import AdapterView, adapter_host, add_lora, is_adapter_file
from dclip.method.ddim import finishing_pairs, generate, generation_pairs, predict_eps
from dclip.method.finetune import (FinetuneConfig, finetune, finetuned_cache_path, load_finetuned, save_finetuned)
from dclip.method.latents import precompute
from dclip.method.mixing import noise_mix
from dclip.runtime.errors import UnreadableFileError

T0 = 301  # the toy glasses edit's return step


@pytest.fixture(scope="module")
def toy():
    from dclip.models.clip import load_clip
    from dclip.models.unet import load_unet
    from dclip.toy.domain import FINETUNE_SEED, face_set

    base, clip = load_unet("toy"), load_clip("toy")
    latents = precompute(base, face_set(FINETUNE_SEED, 2)[0], T0, 8, progress=False)
    return base, clip, latents


def _config(**kw):
    return FinetuneConfig("face", "face with glasses", **{"t0": T0, "n_iter": 1, "lr": 1e-2, **kw})


@pytest.fixture(scope="module")
def two_adapters(toy, tmp_path_factory):
    base, clip, latents = toy
    folder = tmp_path_factory.mktemp("adapters")
    results = [finetune(base, latents, clip, _config(adapter="lora", rank=2, seed=s, lr=lr), progress=False)
               for s, lr in ((0, 1e-2), (1, 3e-2))]
    paths = [save_finetuned(r, folder / f"a{i}.safetensors", base="toy") for i, r in enumerate(results)]
    return results, paths


def test_a_lora_fine_tune_does_not_depend_on_the_callers_random_state(toy):
    """The adapter's random initial weights come from the config's seed: two fine-tunes after different
    ``torch.manual_seed`` calls are equal, and another config seed gives other weights."""
    from dclip.method.adapters import adapter_state

    base, clip, latents = toy
    weights = []
    for caller_seed, seed in ((1, 0), (2, 0), (1, 5)):
        torch.manual_seed(caller_seed)
        config = _config(adapter="lora", rank=2, seed=seed, n_gen=2)
        weights.append(adapter_state(finetune(base, latents, clip, config, progress=False).model))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def _eps(model, x, t=250):
    with torch.no_grad():
        return predict_eps(model, x, t)


def test_a_new_adapter_computes_the_base_model_and_trains_only_itself(toy):
    base, _, _ = toy
    import copy

    model = add_lora(copy.deepcopy(base), rank=3)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(_eps(model, x), _eps(base, x))  # B = 0 at the start (LoRA's initialisation)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    assert all(p.requires_grad is False or "lora_" in n for n, p in model.named_parameters())


def test_an_adapter_saves_small_and_loads_back_to_the_same_noise(toy, two_adapters):
    base, _, _ = toy
    (result, _), (path, _) = two_adapters
    full_bytes = sum(t.numel() * 4 for t in base.state_dict().values())
    assert is_adapter_file(path) and path.stat().st_size < 0.1 * full_bytes
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["adapter"]["kind"] == "lora" and sidecar["adapter"]["rank"] == 2 and sidecar["base"] == "toy"
    view = load_finetuned(path, base=base, base_name="toy")
    assert isinstance(view, AdapterView)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    trained, loaded, original = _eps(result.model, x), _eps(view, x), _eps(base, x)
    assert (trained - original).abs().max() > 1e-3  # the adapter changed the model ...
    torch.testing.assert_close(loaded, trained, rtol=0, atol=1e-6)  # ... and the file holds that change
    torch.testing.assert_close(_eps(base, x), original, rtol=0, atol=0)  # the base itself is left alone


def test_adapters_mix_by_eq14_and_by_the_degree_of_change_without_a_copy_each(toy, two_adapters):
    base, _, _ = toy
    results, paths = two_adapters
    views = [load_finetuned(p, base=base) for p in paths]
    assert views[0].host is views[1].host is adapter_host(base)  # one copy of the base for every adapter
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    e_base, e1, e2 = (_eps(m, x) for m in (base, results[0].model, results[1].model))
    mix = noise_mix(base, views, gammas=[0.25, 0.75])
    torch.testing.assert_close(_eps(mix, x), 0.25 * e1 + 0.75 * e2, rtol=0, atol=1e-5)
    steered = noise_mix(base, views[:1], ratio=0.4)
    torch.testing.assert_close(_eps(steered, x), 0.4 * e1 + 0.6 * e_base, rtol=0, atol=1e-5)
    schedule = noise_mix(base, views, gammas={200: [1, 0], 0: [0, 1]})
    torch.testing.assert_close(_eps(schedule, x, t=250), e1, rtol=0, atol=1e-5)
    torch.testing.assert_close(_eps(schedule, x, t=100), _eps(results[1].model, x, t=100), rtol=0, atol=1e-5)


def test_an_adapter_file_needs_its_base_and_fits_only_its_architecture(toy, two_adapters):
    from diffusers import UNet2DModel

    _, paths = two_adapters
    with pytest.raises(UnreadableFileError, match="is a LoRA adapter.*Pass the base model"):
        load_finetuned(paths[0])
    other = UNet2DModel(sample_size=32, block_out_channels=(32, 64), down_block_types=("DownBlock2D",) * 2,
                        up_block_types=("UpBlock2D",) * 2, layers_per_block=1, norm_num_groups=8)
    with pytest.raises(UnreadableFileError, match="different architecture"):
        load_finetuned(paths[0], base=other)


def test_lora_with_gradient_checkpointing_gets_the_same_gradients(toy):
    """Checkpointing recomputes activations, it must not change (or drop) the adapter's gradients through an S_gen
    chain whose input needs no gradient and whose first layer is frozen."""
    import copy

    from dclip.method.ddim import denoise_step

    base, _, latents = toy
    model = add_lora(copy.deepcopy(base), rank=2).train()
    with torch.no_grad():  # a trained-looking adapter, so that every LoRA weight gets a gradient
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01, generator=torch.Generator().manual_seed(len(name)))

    def grads(checkpointing: bool) -> dict:
        model.zero_grad(set_to_none=True)
        (model.enable_gradient_checkpointing if checkpointing else model.disable_gradient_checkpointing)()
        x = latents.x_lat
        for t, t_next in generation_pairs(T0, 3):
            x = denoise_step(model, x, t, t_next)[0]
        x.square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    plain, checkpointed = grads(False), grads(True)
    assert set(plain) == set(checkpointed) and all(g.abs().max() > 0 for g in plain.values())
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-4, atol=1e-8, msg=name)


# ------------------------------------------------------------------------------------------------
# The accelerations change the work as they say
# ------------------------------------------------------------------------------------------------

class _Calls:
    def __init__(self):
        from diffusers import UNet2DModel

        self.n = 0
        self._h = torch.nn.modules.module.register_module_forward_hook(
            lambda m, a, o: setattr(self, "n", self.n + isinstance(m, UNet2DModel)))

    def close(self):
        self._h.remove()
        return self.n


def test_loss_at_the_first_step_takes_one_unet_call_per_update_instead_of_s_gen(toy):
    base, clip, latents = toy
    counts = {}
    for loss_at in ("chain_end", "first_step"):
        calls = _Calls()
        result = finetune(base, latents, clip, _config(loss_at=loss_at, n_gen=6, n_iter=2), progress=False)
        counts[loss_at] = (calls.close(), len(result.history))
    assert counts["chain_end"] == (2 * 2 * 6, 4)  # 2 passes x 2 images, S_gen = 6 calls each
    assert counts["first_step"] == (2 * 2 * 1, 4)


def test_a_batch_of_four_makes_a_quarter_of_the_updates(toy):
    base, clip, _ = toy
    from dclip.toy.domain import FINETUNE_SEED, face_set

    latents = precompute(base, face_set(FINETUNE_SEED, 8)[0], T0, 4, progress=False)
    one = finetune(base, latents, clip, _config(n_gen=2), progress=False)
    four = finetune(base, latents, clip, _config(n_gen=2, batch_size=4), progress=False)
    assert (len(one.history), len(four.history)) == (8, 2)


def test_finishing_early_skips_the_steps_below_and_returns_x0_hat(toy):
    base, _, latents = toy
    pairs = generation_pairs(T0, 10)
    assert finishing_pairs(T0, 10, None) == pairs
    short = finishing_pairs(T0, 10, 100)
    assert short[-1][0] <= 100 < short[-2][0] and short == pairs[: len(short)]
    calls = _Calls()
    with torch.no_grad():
        early = generate(base, latents.x_lat, T0, 10, finish_at=100)
    assert calls.close() == len(short) < len(pairs)
    seen = []
    with torch.no_grad():
        generate(base, latents.x_lat, T0, 10, callback=lambda row: seen.append(row))
    step = next(row for row in seen if row["t"] == short[-1][0])
    torch.testing.assert_close(early, step["x0_pred"], rtol=0, atol=0)  # eq. 6 at that step
    with torch.no_grad():  # finishing at t = 0 is the whole process (ᾱ_{-1} = 1: the last step's x̂0 is x)
        torch.testing.assert_close(generate(base, latents.x_lat, T0, 10, finish_at=0),
                                   generate(base, latents.x_lat, T0, 10), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="finish_at must be a time ≥ 0"):
        finishing_pairs(T0, 10, -5)


def test_the_paper_fine_tune_keeps_its_cache_key():
    """The new options enter the disk cache's key only when set: a paper fine-tune's key is the one made from the
    fields it had before they existed."""
    import hashlib

    from dclip.method.latents import cache_key

    images = torch.zeros(1, 3, 32, 32)
    paper = FinetuneConfig("face", "angry face")
    old_fields = {k: v for k, v in asdict(paper).items() if k not in ("adapter", "rank", "loss_at", "lambda_l2")}
    digest = hashlib.blake2b(digest_size=12)
    digest.update(cache_key(None, images, paper.t0, 40, weights="w").encode())
    digest.update(json.dumps(old_fields, sort_keys=True).encode())
    assert finetuned_cache_path("c", None, images, paper, 40, weights="w").stem == digest.hexdigest()
    lora = FinetuneConfig("face", "angry face", adapter="lora")
    assert finetuned_cache_path("c", None, images, lora, 40, weights="w") != \
        finetuned_cache_path("c", None, images, paper, 40, weights="w")


def test_bad_options_name_the_choices():
    with pytest.raises(ValueError, match="adapter must be one of"):
        FinetuneConfig("a", "b", adapter="dora")
    with pytest.raises(ValueError, match="loss_at must be one of"):
        FinetuneConfig("a", "b", loss_at="middle")


def test_an_adapter_edit_is_judged_like_the_full_fine_tune():
    """The toy glasses edit learned by the toy recipe with every weight and with a LoRA adapter (the toy profile's
    LoRA learning rate), applied to 8 held-out faces without glasses: both reach the target on most faces, and
    the paired per-face difference of their hits has a 95 % interval that contains 0."""
    from dclip.method.edit import edit
    from dclip.method.finetune import attribute_config, world_settings
    from dclip.method.metrics import bootstrap_interval
    from dclip.models.clip import load_clip
    from dclip.models.unet import load_unet
    from dclip.notebook.profiles import PROFILES
    from dclip.notebook.worlds import profile_recipe
    from dclip.toy import domain
    from dclip.toy.judging import edit_outcomes, lacking_faces
    from dclip.toy.nets import load_judge

    toy = PROFILES["toy"]
    base, clip, judge = load_unet("toy"), load_clip("toy"), load_judge()
    latents = precompute(base, domain.face_set(domain.FINETUNE_SEED, toy.n_train)[0], T0, toy.n_inv_train,
                         progress=False)
    faces, records = lacking_faces("glasses", 8, domain.HELD_OUT_SEED + 400_000)
    hits = {}
    for adapter in ("none", "lora"):
        config = attribute_config("glasses", adapter=adapter, **profile_recipe(toy, adapter), **world_settings("toy"))
        model = finetune(base, latents, clip, config, progress=False).model
        with torch.no_grad():
            edited = edit(base, model, faces, T0, n_inv=toy.n_inv, n_gen=toy.n_gen)
        hits[adapter] = edit_outcomes(judge, faces, edited, "glasses", records)["hit"]
    assert hits["none"].mean() >= 0.75 and hits["lora"].mean() >= 0.75, hits
    lo, hi = bootstrap_interval((hits["lora"] - hits["none"]).numpy())
    assert lo <= 0 <= hi, (lo, hi, hits)


# ------------------------------------------------------------------------------------------------
# The recipe table's rule (bench/recipes.py) and how notebook 04 shows it
# ------------------------------------------------------------------------------------------------

def _bench_recipes():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "recipes.py"
    spec = importlib.util.spec_from_file_location("bench_recipes", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _row(name, hit, learn_s, apply_s):
    return {"recipe": name, "learn_s": learn_s, "apply_s_per_image": apply_s, "file_bytes": 100, "hit": hit}


def test_an_option_matches_the_paper_when_it_is_not_worse_by_more_than_the_margins():
    recipes = _bench_recipes()
    g = torch.Generator().manual_seed(0)
    paper_hit = (torch.rand(3, 32, generator=g) < 0.95).float()

    def outcomes(hit):
        return [{"hit": h, "judge_edit": torch.full((32,), 0.08)} for h in hit]

    same = paper_hit[:, torch.randperm(32, generator=g)]                   # as good, other faces hit
    worse = paper_hit * (torch.rand(3, 32, generator=g) < 0.5).float()    # loses half of the hits
    rows = [_row("paper", paper_hit.mean().item(), 40.0, 0.4), _row("fast", same.mean().item(), 4.0, 0.1),
            _row("broken", worse.mean().item(), 2.0, 0.1)]
    measured = [{"outcomes": outcomes(h)} for h in (paper_hit, same, worse)]
    recipes.compare(rows, measured)
    assert (rows[1]["learn_speedup"], rows[1]["apply_speedup"]) == (10.0, 4.0)
    assert rows[1]["matches_paper"] is True and rows[2]["matches_paper"] is False
    assert rows[2]["hit_diff"]["ci"][1] < 0 and "matches_paper" not in rows[0]


def test_the_non_inferiority_rule_on_differences_whose_answer_is_known():
    from dclip.studies.accelerations import non_inferior

    def d(lo, hi):
        return {"mean": (lo + hi) / 2, "ci": [lo, hi]}

    level = d(-0.01, 0.01)
    assert non_inferior(d(-0.10, 0.05), level)           # the hit margin itself passes
    assert non_inferior(d(-0.08, -0.02), level)          # slightly worse, surely: still within the margin
    assert not non_inferior(d(-0.11, 0.20), level)       # could lose more than 0.10 (a wide interval fails)
    assert not non_inferior(d(-0.39, 0.03), level)       # the old rule's "contains 0" passed this (lora, bench/RESULTS.md)
    assert non_inferior(d(0.0, 0.0), d(0.007, 0.027))    # further from the truth, but by at most 0.03
    assert not non_inferior(d(0.0, 0.0), d(0.01, 0.031))
    assert not non_inferior(None, level) and not non_inferior(level, None)


def test_notebook_04_shows_the_recipe_table_or_says_how_to_measure_it(tmp_path):
    from dclip.studies import accelerations

    assert accelerations.read_results(tmp_path / "none.json") is None
    assert accelerations.recipe_study(None).rows[0]["recipe"] == "not measured here"
    row = {**_row("lora", 0.9, 10.0, 0.2), "learn_speedup": 4.0, "apply_speedup": 1.0, "learn_unet_evals": 608,
           "apply_unet_evals_per_image": 79, "hit_ci": [0.8, 1.0], "kept": 1.0, "kept_ci": [1.0, 1.0],
           "judge_to_true": 0.07, "judge_to_true_ci": [0.05, 0.09], "hit_diff": {"mean": -0.05, "ci": [-0.1, 0.02]},
           "judge_to_true_diff": {"mean": 0.0, "ci": [-0.01, 0.01]}, "matches_paper": True}
    shown = accelerations.recipe_study({"edit": "glasses", "runs": 3, "faces": 32, "rows": [row]}).rows[0]
    assert shown["hit"] == "0.90 [0.80, 1.00]" and shown["Δhit"] == "-0.05 [-0.10, +0.02]"
    assert shown["matches paper"] == "yes" and shown["UNet evaluations learn / apply per image"] == "608 / 79"
