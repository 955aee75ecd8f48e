"""Metrics on inputs with known answers: MAE, SSIM, LPIPS, S_dir and identity similarity."""
import pytest
import torch
import torch.nn.functional as F

from dclip.method import metrics
from dclip.models.clip import Clip
from dclip.data.images import sample_photos
from dclip.models.weights import WeightsNotFoundError


@pytest.fixture(scope="module")
def photos():
    return sample_photos(("grace_hopper", "astronaut"), size=32)


@pytest.fixture(scope="module")
def lpips_model():
    return metrics.load_lpips(pretrained=False)


def test_identical_images_score_perfectly(photos, lpips_model):
    assert torch.equal(metrics.mae(photos, photos), torch.zeros(2))
    torch.testing.assert_close(metrics.ssim(photos, photos), torch.ones(2))
    torch.testing.assert_close(metrics.lpips_distance(lpips_model, photos, photos), torch.zeros(2))
    scores = metrics.reconstruction_scores(lpips_model, photos, photos)
    assert scores == pytest.approx({"mae": 0.0, "lpips": 0.0, "ssim": 1.0}, abs=1e-6)


def test_mae_is_on_the_unit_scale():
    x = torch.zeros(1, 3, 8, 8)
    assert metrics.mae(x, x + 0.2).item() == pytest.approx(0.1)  # 0.2 in [-1, 1] is 0.1 in [0, 1]
    assert metrics.mae(-torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 4)).item() == pytest.approx(1.0)


def test_shifted_image_has_a_known_mae_and_lower_ssim(photos):
    stripes = torch.ones(1, 3, 8, 8)
    stripes[..., 1::2] = -1  # columns alternate between -1 and 1: a one-pixel shift flips every pixel
    torch.testing.assert_close(metrics.mae(stripes, torch.roll(stripes, shifts=1, dims=-1)), torch.ones(1))
    shifted = torch.roll(photos, shifts=1, dims=-1)
    assert (metrics.ssim(photos, shifted) < 0.99).all()


def test_lpips_grows_with_the_change_and_is_seeded(photos, lpips_model):
    small = metrics.lpips_distance(lpips_model, photos, (photos + 0.05).clamp(-1, 1))
    large = metrics.lpips_distance(lpips_model, photos, photos.flip(0))
    assert (small > 0).all() and (large > small).all()
    again = metrics.lpips_distance(metrics.load_lpips(pretrained=False), photos, photos.flip(0))
    torch.testing.assert_close(again, large)


def test_lpips_loads_the_alexnet_trunk_from_a_local_file(tmp_path):
    from torchvision.models import alexnet

    state = alexnet(weights=None).state_dict()
    path = tmp_path / metrics.ALEXNET_FILE
    torch.save(state, path)
    model = metrics.load_lpips(pretrained=True, weights=path)
    torch.testing.assert_close(getattr(model.net.slice1, "0").weight, state["features.0.weight"])
    torch.testing.assert_close(getattr(model.net.slice5, "10").weight, state["features.10.weight"])


def test_lpips_without_its_trunk_offline_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="alexnet-owt-7be5be79.pth") as err:
        metrics.load_lpips(pretrained=True)
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in str(err.value)  # where torchvision keeps it


def test_mismatched_batches_are_a_clear_error(photos):
    with pytest.raises(ValueError, match="same shape"):
        metrics.mae(photos, photos[:1])


class _MeanColourClip(torch.nn.Module):
    """A stand-in CLIP whose image embedding is the mean (normalised) colour."""

    def encode_image(self, x):
        return x.mean(dim=(2, 3))


def _stub_clip():
    return Clip(model=_MeanColourClip(), tokenizer=None, image_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                device=torch.device("cpu"))


def test_s_dir_of_a_known_direction(monkeypatch):
    import dclip.method.losses as clip_loss

    gray = torch.zeros(2, 3, 8, 8)
    gray[:, 2] = 0.5
    red = gray.clone()
    red[:, 0] = 0.5
    # The embeddings of the stand-in: the mean colour after CLIP's normalisation, unit length.
    emb = lambda x: F.normalize(((x + 1) / 2 - 0.5).div(0.5).mean(dim=(2, 3)), dim=-1)  # noqa: E731
    image_direction = F.normalize(emb(red)[:1] - emb(gray)[:1], dim=-1)
    clip = _stub_clip()
    for text_direction, expected in ((image_direction, 1.0), (-image_direction, -1.0)):
        monkeypatch.setattr(clip_loss, "text_direction", lambda c, s, t, d=text_direction: d)
        s_dir = metrics.directional_similarity(clip, gray, red, "gray", "red")
        torch.testing.assert_close(s_dir, torch.full((2,), expected), atol=1e-5, rtol=0)
    orthogonal = F.normalize(torch.linalg.cross(image_direction, emb(gray)[:1]), dim=-1)
    monkeypatch.setattr(clip_loss, "text_direction", lambda c, s, t: orthogonal)
    torch.testing.assert_close(metrics.directional_similarity(clip, gray, red, "a", "b"), torch.zeros(2),
                               atol=1e-5, rtol=0)


def test_identity_similarity_of_identical_faces_is_one(photos):
    from dclip.models.identity import load_face_model

    face = load_face_model(pretrained=False)
    torch.testing.assert_close(metrics.identity_similarity(face, photos, photos), torch.ones(2))


def test_lpips_trunk_is_downloaded_by_torch_hub_into_its_cache_when_online(tmp_path, monkeypatch):
    """Online with empty caches: torchvision's route (torch.hub, hash checked) fetches the file into
    $TORCH_HOME/hub/checkpoints; the download itself is replaced by a local copy."""
    from torchvision.models import alexnet

    import dclip.models.weights

    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DCLIP_OFFLINE", raising=False)
    monkeypatch.setattr(dclip.models.weights, "_host_answers", lambda host, port, timeout: host == "download.pytorch.org")
    state = alexnet(weights=None).state_dict()
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = metrics.load_lpips(pretrained=True)
    assert calls == [(metrics.ALEXNET_URL, "7be5be79")]  # torchvision's check of the file's SHA-256
    assert (tmp_path / "torch" / "hub" / "checkpoints" / metrics.ALEXNET_FILE).is_file()
    torch.testing.assert_close(getattr(model.net.slice1, "0").weight, state["features.0.weight"])
