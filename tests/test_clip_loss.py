"""CLIP losses (eqs. 8, 9) and CLIP loading, on a tiny random-weight open_clip model."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

import dclip.models.clip as clip_models
import dclip.method.losses as cl
from dclip.models.weights import WeightsNotFoundError


@pytest.fixture(scope="module")
def clip():
    return clip_models.tiny_clip(seed=0)


def _images(n=2, size=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=generator) * 2 - 1


# ---------------------------------------------------------------------------------- templates

def test_templates_are_the_authors_79():
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    openai = [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]
    assert len(cl.IMAGENET_TEMPLATES) == 79 == len(set(cl.IMAGENET_TEMPLATES))
    assert list(cl.IMAGENET_TEMPLATES) == [t for t in openai if t != "a photo of many {}."]


# ---------------------------------------------------------------------------------- text direction

def test_text_direction_is_unit_cached_and_prompt_specific(clip):
    d = cl.text_direction(clip, "face", "angry face")
    assert d.shape == (1, clip.model.text_projection.shape[1])
    assert not d.requires_grad
    assert torch.linalg.norm(d).item() == pytest.approx(1.0, abs=1e-5)
    again = cl.text_direction(clip, "face", "angry face")
    assert again is d
    other = cl.text_direction(clip, "face", "smiling face")
    assert F.cosine_similarity(d, other).item() < 0.999
    # mean of differences: swapping the prompts flips the direction exactly
    torch.testing.assert_close(cl.text_direction(clip, "angry face", "face"), -d)


def test_text_direction_matches_template_ensemble(clip):
    def ensemble(text):
        tokens = clip.tokenizer([t.format(text) for t in cl.IMAGENET_TEMPLATES])
        with torch.no_grad():
            return F.normalize(clip.model.encode_text(tokens), dim=-1)

    expected = F.normalize((ensemble("dog") - ensemble("cat")).mean(0, keepdim=True), dim=-1)
    torch.testing.assert_close(cl.text_direction(clip, "cat", "dog"), expected, atol=1e-5, rtol=1e-5)


def test_text_direction_is_not_shared_between_models(clip):
    other = clip_models.tiny_clip(seed=1)
    a = cl.text_direction(clip, "face", "tanned face")
    b = cl.text_direction(other, "face", "tanned face")
    assert a is not b and F.cosine_similarity(a, b).item() < 0.99


# ---------------------------------------------------------------------------------- images

def test_encode_images_unit_norm_and_differentiable(clip):
    x = _images().requires_grad_(True)
    emb = clip_models.encode_images(clip, x)
    assert emb.shape == (2, 32)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2), atol=1e-5, rtol=0)
    emb.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_encode_images_center_crops_like_clip_preprocess(clip):
    wide = _images(n=1, size=224)[..., :1].expand(-1, -1, -1, 280).clone()
    wide += torch.linspace(-0.5, 0.5, 280)  # make the columns differ
    torch.testing.assert_close(clip_models.encode_images(clip, wide), clip_models.encode_images(clip, wide[..., 28:252]))


# ---------------------------------------------------------------------------------- losses

def _fake_encoder(monkeypatch):
    """encode_images that returns its input rows (already unit vectors) as embeddings."""
    monkeypatch.setattr(cl, "encode_images", lambda clip, x: x)


def test_directional_loss_known_values(clip, monkeypatch):
    direction = cl.text_direction(clip, "face", "angry face")
    orthogonal = F.normalize(torch.randn(1, 32), dim=-1)
    orthogonal = F.normalize(orthogonal - (orthogonal @ direction.T) * direction, dim=-1)
    _fake_encoder(monkeypatch)
    along = cl.directional_clip_loss(clip, -direction, direction, direction)
    against = cl.directional_clip_loss(clip, direction, -direction, direction)
    across = cl.directional_clip_loss(clip, -orthogonal, orthogonal, direction)
    assert along.item() == pytest.approx(0.0, abs=1e-5)
    assert against.item() == pytest.approx(2.0, abs=1e-5)
    assert across.item() == pytest.approx(1.0, abs=1e-5)


def test_directional_loss_gradients_reach_both_images(clip):
    direction = cl.text_direction(clip, "face", "angry face")
    x_src = _images(seed=1).requires_grad_(True)
    x_edit = _images(seed=2).requires_grad_(True)
    loss = cl.directional_clip_loss(clip, x_src, x_edit, direction)
    assert loss.shape == (2,) and ((loss >= 0) & (loss <= 2)).all()
    loss.sum().backward()
    for x in (x_src, x_edit):
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.model.parameters())


def test_directional_similarity_is_one_minus_loss(clip):
    x_src, x_edit = _images(seed=3), _images(seed=4)
    direction = cl.text_direction(clip, "face", "old face")
    loss = cl.directional_clip_loss(clip, x_src, x_edit, direction)
    sim = cl.directional_similarity(clip, x_src, x_edit, "face", "old face")
    assert not sim.requires_grad
    torch.testing.assert_close(sim, 1 - loss.detach(), atol=1e-5, rtol=0)


def test_global_loss_known_values(clip, monkeypatch):
    """Eq. 8 with the image encoder replaced by the identity: the text embedding itself scores 0, its
    opposite 2 and a unit vector orthogonal to it 1."""
    text = cl.text_embedding(clip, "a dog")
    orthogonal = F.normalize(torch.randn(1, text.shape[-1]), dim=-1)
    orthogonal = F.normalize(orthogonal - (orthogonal @ text.T) * text, dim=-1)
    _fake_encoder(monkeypatch)
    losses = cl.global_clip_loss(clip, torch.cat([text, -text, orthogonal]), "a dog")
    torch.testing.assert_close(losses, torch.tensor([0.0, 2.0, 1.0]), atol=1e-5, rtol=0)


def test_global_loss_decreases_under_descent(clip):
    x = _images(n=1, seed=5).requires_grad_(True)
    first = cl.global_clip_loss(clip, x, "a dog")
    optimizer = torch.optim.Adam([x], lr=0.02)
    for _ in range(5):
        optimizer.zero_grad()
        cl.global_clip_loss(clip, x, "a dog").sum().backward()
        optimizer.step()
    last = cl.global_clip_loss(clip, x, "a dog")
    assert last.item() < first.item() - 0.01


def test_clip_objective_known_values():
    assert cl.clip_objective(0.0).item() == 0.0
    assert cl.clip_objective(1.0).item() == pytest.approx(math.log(2))
    assert math.isinf(cl.clip_objective(2.0).item())
    l_dir = torch.tensor([0.5], requires_grad=True)
    cl.clip_objective(l_dir).backward()
    assert l_dir.grad.item() == pytest.approx(1 / 1.5)  # d/dL -log((2-L)/2) = 1/(2-L)


# ---------------------------------------------------------------------------------- loading

def test_tiny_clip_is_frozen_and_seeded(clip):
    assert not clip.model.training
    assert not any(p.requires_grad for p in clip.model.parameters())
    assert clip.image_size == 224
    again = clip_models.tiny_clip(seed=0)
    torch.testing.assert_close(again.model.visual.proj, clip.model.visual.proj)


def test_load_clip_from_local_weights_file(clip, tmp_path):
    import open_clip

    config = tmp_path / "dclip-test-tiny.json"
    config.write_text(json.dumps(clip_models._TINY_CFG))
    open_clip.add_model_config(config)
    weights = tmp_path / "tiny.pt"
    torch.save(clip.model.state_dict(), weights)
    loaded = clip_models.load_clip("dclip-test-tiny", weights=weights)
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())
    x = _images(n=1, seed=6)
    torch.testing.assert_close(clip_models.encode_images(loaded, x), clip_models.encode_images(clip, x))


def test_load_clip_missing_file_and_unknown_tag():
    with pytest.raises(WeightsNotFoundError, match="no file"):
        clip_models.load_clip(weights="/nonexistent/clip.safetensors")
    with pytest.raises(ValueError, match="not an open_clip pretrained tag"):
        clip_models.load_clip(pretrained="no-such-tag")


def test_load_clip_offline_fails_fast(no_network, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="timm/vit_base_patch16_clip_224.openai"):
        clip_models.load_clip("ViT-B-16-quickgelu", "openai")


def test_cached_hub_weights_are_used_without_network(monkeypatch, tmp_path):
    import huggingface_hub.constants

    snapshot = tmp_path / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"")
    (tmp_path / "models--timm--vit_base_patch16_clip_224.openai" / "refs").mkdir()
    (tmp_path / "models--timm--vit_base_patch16_clip_224.openai" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    found = clip_models._checkpoint_for_tag("ViT-B-16-quickgelu", "openai")
    assert found.endswith("abc123/open_clip_model.safetensors")
