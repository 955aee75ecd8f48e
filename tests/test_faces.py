"""Face landmarks, FFHQ alignment and the identity loss (eq. 11)."""

from pathlib import Path

import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from dclip.data import faces
from dclip.method import losses
from dclip.models import identity
from dclip.models.weights import WeightsNotFoundError


@pytest.fixture(scope="module")
def grace_hopper():
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")


@pytest.fixture(scope="module")
def face_model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return identity.load_face_model(pretrained=False)


def _expected_eyes(landmarks, size):
    """Where the FFHQ quad sends the two eye points in a size x size output (pixel indices)."""
    quad = faces.ffhq_quad(landmarks)
    axes = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)  # columns: x side, y side
    return np.stack([np.linalg.solve(axes, p - quad[0]) * size - 0.5 for p in landmarks[:2]])


def _to_tensor(image):
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


# ---------------------------------------------------------------------------------- landmarks

def test_mtcnn_finds_faces(grace_hopper):
    for image in (grace_hopper, Image.fromarray(skimage.data.astronaut())):
        lm = faces.detect_landmarks(image)
        assert lm.shape == (5, 2)
        assert lm[0, 0] < lm[1, 0]  # left eye left of right eye
        assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()  # eyes above nose above mouth


def test_no_face_in_a_cat():
    with pytest.raises(faces.NoFaceError, match="no face"):
        faces.detect_landmarks(Image.fromarray(skimage.data.chelsea()))


# ---------------------------------------------------------------------------------- alignment

def test_ffhq_quad_known_geometry():
    # eyes 64 px apart, mouth 64 px below their midpoint: half side = max(2*64, 1.8*64) = 128
    lm = np.array([[100, 100], [164, 100], [132, 140], [112, 164], [152, 164]], dtype=float)
    centre = np.array([132, 100 + 6.4])
    expected = centre + np.array([[-128, -128], [-128, 128], [128, 128], [128, -128]])
    np.testing.assert_allclose(faces.ffhq_quad(lm), expected)


def test_ffhq_quad_same_from_dlib_68_points():
    five = np.array([[100, 98], [166, 103], [131, 140], [110, 165], [150, 168]], dtype=float)
    dlib = np.zeros((68, 2))
    dlib[36:42] = five[0] + np.array([[-6, 0], [-3, -2], [3, -2], [6, 0], [3, 2], [-3, 2]])
    dlib[42:48] = five[1] + np.array([[-6, 0], [-3, -2], [3, -2], [6, 0], [3, 2], [-3, 2]])
    dlib[48], dlib[54] = five[3], five[4]
    np.testing.assert_allclose(faces.ffhq_quad(dlib), faces.ffhq_quad(five))


def test_aligned_eyes_land_where_ffhq_puts_them(grace_hopper):
    lm = faces.detect_landmarks(grace_hopper)
    aligned = faces.align_face(grace_hopper, size=256, landmarks=lm)
    assert aligned.size == (256, 256) and aligned.mode == "RGB"
    expected = _expected_eyes(lm, 256)
    # the FFHQ frame puts the eyes level, about 64 px apart, around (96, 121) and (160, 121)
    assert abs(expected[0, 1] - expected[1, 1]) < 2 and 55 < expected[1, 0] - expected[0, 0] < 70
    found = faces.detect_landmarks(aligned)[:2]
    np.testing.assert_allclose(found, expected, atol=3.0)


def test_align_face_detects_by_itself(grace_hopper):
    auto = np.asarray(faces.align_face(grace_hopper), dtype=np.float32)
    given = np.asarray(faces.align_face(grace_hopper, landmarks=faces.detect_landmarks(grace_hopper)),
                       dtype=np.float32)
    np.testing.assert_array_equal(auto, given)


# ---------------------------------------------------------------------------------- identity

def test_identity_loss_gradient_flows_to_x_inside_the_face_box(face_model):
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 3, 256, 256, generator=generator) * 2 - 1
    x = (torch.rand(1, 3, 256, 256, generator=generator) * 2 - 1).requires_grad_(True)
    loss = losses.identity_loss(face_model, x0, x, lambda_l1=0.0, lambda_face=1.0)
    assert loss.shape == (1,)
    loss.sum().backward()
    grad = x.grad.abs().sum(dim=(0, 1))
    assert torch.isfinite(grad).all()
    assert grad[35:223, 32:220].sum() > 0  # the authors' 256 px face box
    assert grad[:35].sum() == 0 and grad[223:].sum() == 0 and grad[:, :32].sum() == 0
    assert all(p.grad is None for p in face_model.parameters())


def test_identity_loss_l1_part(face_model):
    x0 = torch.zeros(2, 3, 256, 256)
    x = torch.full((2, 3, 256, 256), 0.5)
    loss = losses.identity_loss(face_model, x0, x, lambda_l1=0.3, lambda_face=0.0)
    torch.testing.assert_close(loss, torch.full((2,), 0.15))
    same = losses.identity_loss(face_model, x, x.clone())  # paper weights, identical images
    torch.testing.assert_close(same, torch.zeros(2), atol=1e-5, rtol=0)


def test_load_face_model_offline_without_file(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="20180402-114759-vggface2.pt"):
        identity.load_face_model()


def test_load_face_model_from_file(face_model, tmp_path):
    state = dict(face_model.state_dict())
    state["logits.weight"] = torch.zeros(8631, 512)  # the real file carries the classifier too
    state["logits.bias"] = torch.zeros(8631)
    path = tmp_path / identity.VGGFACE2_FILE
    torch.save(state, path)
    loaded = identity.load_face_model(weights=path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(loaded.last_linear.weight, face_model.last_linear.weight)


def _vggface2_file(face_model, path):
    state = dict(face_model.state_dict())
    state["logits.weight"] = torch.zeros(8631, 512)
    state["logits.bias"] = torch.zeros(8631)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def test_vggface2_in_facenets_own_cache_is_used(face_model, no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _vggface2_file(face_model, tmp_path / "torch" / "checkpoints" / identity.VGGFACE2_FILE)
    loaded = identity.load_face_model()
    torch.testing.assert_close(loaded.last_linear.weight, face_model.last_linear.weight)


def test_vggface2_is_downloaded_by_facenet_into_its_cache_when_online(face_model, monkeypatch, tmp_path):
    import facenet_pytorch.models.utils.download as facenet_download

    import dclip.models.weights

    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DCLIP_OFFLINE", raising=False)
    monkeypatch.setattr(dclip.models.weights, "_host_answers", lambda host, port, timeout: host == "github.com")
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):  # facenet's downloader, minus the network
        calls.append((url, dst))
        _vggface2_file(face_model, Path(dst))

    monkeypatch.setattr(facenet_download, "download_url_to_file", fake_download)
    loaded = identity.load_face_model()
    assert calls == [(identity.VGGFACE2_URL, str(tmp_path / "torch" / "checkpoints" / identity.VGGFACE2_FILE))]
    torch.testing.assert_close(loaded.last_linear.weight, face_model.last_linear.weight)
    identity.load_face_model()
    assert len(calls) == 1  # cached now


def test_photo_to_tensor_is_the_aligned_crop_or_says_why_not(grace_hopper):
    from dclip.data.images import to_tensor

    x, how = faces.photo_to_tensor(grace_hopper, 64)
    assert how == "face aligned"
    torch.testing.assert_close(x, to_tensor(faces.align_face(grace_hopper, 64), 64))
    cat = Image.fromarray(skimage.data.chelsea())
    with pytest.raises(faces.NoFaceError):
        faces.photo_to_tensor(cat, 64)
    x, how = faces.photo_to_tensor(cat, 64, crop_without_face=True)
    assert how == "no face found; centre-cropped" and x.shape == (1, 3, 64, 64)
    torch.testing.assert_close(x, to_tensor(cat, 64))
    assert faces.photo_to_tensor(cat, 64, align=False)[1] == "centre-cropped"
