"""ArcFace IR-SE50 and the e4e encoder against the authors' code (fixtures computed at full size).

Weight files are written in the real layouts (``model_ir_se50.pth``: a plain state dict;
``e4e_ffhq_encode.pt``: ``{'state_dict': {'encoder.*', 'decoder.*'}, 'latent_avg', 'opts'}``) from the
fixtures' seeded weights and read back through the public loaders.
"""
import math

import pytest
import torch

from dclip.method import losses
from dclip.models import identity
from dclip.models.arcface import ARCFACE_FILE, ArcFace, arcface_embedding, load_arcface
from dclip.baselines.e4e import E4E_FILE, load_e4e, tiny_e4e
from dclip.baselines.stylegan2 import Generator, StyleGAN2Config, tiny_stylegan2
from dclip.models.weights import WeightsNotFoundError

from conftest import FIXTURES, rel_err

TOL = 1e-4


def seeded_state(keys, seed):
    """The fixtures' weights from their seed (tests/fixtures/README.md, "IR-SE50 networks")."""
    rng = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape, is_prelu in keys:
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros((), dtype=torch.long)
            continue
        r = torch.randn(shape, generator=rng)
        if len(shape) > 1:
            state[name] = r / math.sqrt(math.prod(shape[1:]))
        elif name.endswith("running_var"):
            state[name] = 1 + 0.1 * r.abs()
        elif is_prelu:
            state[name] = 0.25 + 0.05 * r
        elif name.endswith("weight"):
            state[name] = 1 + 0.1 * r
        else:
            state[name] = 0.1 * r
    return state


# ---------------------------------------------------------------------------------------------
# ArcFace
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arcface_ref():
    return torch.load(FIXTURES / "arcface_ir_se50_ref.pt", weights_only=True)


@pytest.fixture(scope="module")
def arcface_file(arcface_ref, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / ARCFACE_FILE
    torch.save(seeded_state(arcface_ref["keys"], arcface_ref["seed"]), path)
    return path


@pytest.fixture(scope="module")
def arcface(arcface_file):
    return load_arcface(arcface_file)


def test_arcface_embedding_matches_authors_extract_feats(arcface, arcface_ref):
    with torch.no_grad():
        feats = arcface_embedding(arcface, arcface_ref["x"])
    assert feats.shape == (2, 512)
    err = rel_err(feats, arcface_ref["feats_x"])
    assert err <= TOL, f"ArcFace embedding: relative error {err:.3e}"


def test_identity_loss_with_arcface_matches_authors_id_loss(arcface, arcface_ref):
    # the public loss, as fine-tuning calls it (x0 = reference, x = the image that gets gradients)
    loss = losses.identity_loss(arcface, arcface_ref["x"], arcface_ref["x_hat"], lambda_l1=0.0, lambda_face=1.0)
    err = rel_err(loss, arcface_ref["id_loss"])
    assert err <= TOL, f"identity loss: relative error {err:.3e} ({loss.tolist()} vs {arcface_ref['id_loss'].tolist()})"


def test_loaded_arcface_is_frozen_eval_and_named(arcface):
    assert isinstance(arcface, ArcFace) and not arcface.training
    assert not any(p.requires_grad for p in arcface.parameters())
    assert identity.identity_name(arcface) == "ArcFace IR-SE50"


def test_truncated_arcface_file_names_the_keys(arcface_file, tmp_path):
    state = torch.load(arcface_file, weights_only=True)
    del state["body.23.res_layer.5.fc2.weight"]
    state["output_layer.3.weight"] = state["output_layer.3.weight"][:, :100]
    path = tmp_path / ARCFACE_FILE
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"(?s)missing keys: body\.23\.res_layer\.5\.fc2\.weight.*"
                                         r"output_layer\.3\.weight \(512, 100\)"):
        load_arcface(path)


def test_arcface_offline_without_file_names_file_and_source(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"(?s)model_ir_se50\.pth.*drive\.google\.com"):
        load_arcface()


def test_identity_model_prefers_arcface_from_the_weights_folder(no_network, monkeypatch, arcface_file):
    monkeypatch.setenv("DCLIP_WEIGHTS", str(arcface_file.parent))
    model, note = identity.load_identity_model()
    assert isinstance(model, ArcFace) and note == ""


def test_identity_model_without_any_file_names_both(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match=r"(?s)model_ir_se50\.pth.*20180402-114759-vggface2\.pt"):
        identity.load_identity_model()


# ---------------------------------------------------------------------------------------------
# e4e
# ---------------------------------------------------------------------------------------------

def small_1024_decoder_state():
    """A rosinality-layout 1024 px generator with 512-d styles but 4 channels (a small stand-in decoder)."""
    config = StyleGAN2Config(size=1024, style_dim=512, n_mlp=1, channels={2 ** i: 4 for i in range(2, 11)})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Generator(config).state_dict()


@pytest.fixture(scope="module")
def e4e_ref():
    return torch.load(FIXTURES / "e4e_ref.pt", weights_only=True)


@pytest.fixture(scope="module")
def e4e_checkpoint(e4e_ref):
    encoder = seeded_state(e4e_ref["keys"], e4e_ref["seed"])
    state = {**{f"encoder.{k}": v for k, v in encoder.items()},
             **{f"decoder.{k}": v for k, v in small_1024_decoder_state().items()}}
    return {"state_dict": state, "latent_avg": e4e_ref["latent_avg"],
            "opts": {"encoder_type": "Encoder4Editing", "stylegan_size": 1024, "start_from_latent_avg": True}}


@pytest.fixture(scope="module")
def e4e_file(e4e_checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / E4E_FILE
    torch.save(e4e_checkpoint, path)
    return path


@pytest.fixture(scope="module")
def e4e(e4e_file):
    return load_e4e(e4e_file)


def test_e4e_matches_encoder4editing(e4e, e4e_ref):
    with torch.no_grad():
        encoder_out = e4e.encoder(e4e_ref["x"])
        w_plus = e4e(e4e_ref["x"])
    assert w_plus.shape == (1, 18, 512)
    for name, out in (("encoder_out", encoder_out), ("w_plus", w_plus)):
        err = rel_err(out, e4e_ref[name])
        assert err <= TOL, f"e4e {name}: relative error {err:.3e}"


def test_e4e_decoder_and_latent_avg_come_from_the_file(e4e, e4e_checkpoint):
    assert e4e.decoder.size == 1024 and e4e.decoder.n_latent == 18
    decoder = {k[len("decoder."):]: v for k, v in e4e_checkpoint["state_dict"].items() if k.startswith("decoder.")}
    torch.testing.assert_close(e4e.decoder.state_dict()["to_rgb1.conv.weight"], decoder["to_rgb1.conv.weight"])
    torch.testing.assert_close(e4e.latent_avg[0], e4e_checkpoint["latent_avg"])
    assert not e4e.training and not any(p.requires_grad for p in e4e.parameters())


def _save(tmp_path, ckpt):
    path = tmp_path / E4E_FILE
    torch.save(ckpt, path)
    return path


def _encoder_stub(checkpoint):
    """The small keys of the file's encoder (a truncated encoder: every style block lacks its convs)."""
    return {k: v for k, v in checkpoint["state_dict"].items()
            if k.startswith("encoder.") and "convs" not in k and "body" not in k}


def _decoder(checkpoint):
    return {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("decoder.")}


def test_truncated_e4e_encoder_names_the_keys(e4e_checkpoint, tmp_path):
    state = {**_encoder_stub(e4e_checkpoint), **_decoder(e4e_checkpoint)}
    del state["encoder.latlayer2.weight"]
    grouped = r"missing keys: body\.0\.res_layer.* \(by module: body 378, latlayer2 1, styles 196\)"
    with pytest.raises(ValueError, match=grouped):
        load_e4e(_save(tmp_path, {**e4e_checkpoint, "state_dict": state}))


def test_e4e_file_without_decoder_or_with_wrong_layout(e4e_checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"no decoder\.\* keys"):
        load_e4e(_save(tmp_path, {**e4e_checkpoint, "state_dict": _encoder_stub(e4e_checkpoint)}))
    with pytest.raises(ValueError, match="expected .*'state_dict'"):
        load_e4e(_save(tmp_path, _decoder(e4e_checkpoint)))


def test_e4e_decoder_of_another_size_is_an_error(e4e_checkpoint, tmp_path):
    generator, _ = tiny_stylegan2(64, style_dim=512, channels=4)  # 10 W+ entries, not 18
    state = {**_encoder_stub(e4e_checkpoint), **{f"decoder.{k}": v for k, v in generator.state_dict().items()}}
    with pytest.raises(ValueError, match="18 x 512 codes but the decoder takes 10 x 512"):
        load_e4e(_save(tmp_path, {**e4e_checkpoint, "state_dict": state, "opts": {}}))
    with pytest.raises(ValueError, match="stylegan_size'] = 64 needs 10 style blocks"):
        load_e4e(_save(tmp_path, {**e4e_checkpoint, "state_dict": state, "opts": {"stylegan_size": 64}}))


def test_unreadable_weight_files_say_so(arcface_file, tmp_path):
    path = tmp_path / ARCFACE_FILE
    path.write_bytes(arcface_file.read_bytes()[:4096])  # an interrupted download
    with pytest.raises(ValueError, match="is truncated: a PyTorch archive without its end"):
        load_arcface(path)


def test_e4e_offline_without_file_names_file_and_source(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"(?s)e4e_ffhq_encode\.pt.*drive\.google\.com"):
        load_e4e()


def test_tiny_e4e_encodes_into_its_generators_w_plus():
    generator, latent_avg = tiny_stylegan2(32, seed=0)
    model = tiny_e4e(generator, seed=0)
    faces_32 = torch.rand(2, 3, 64, 64) * 2 - 1  # any size: resized to the encoder's input
    w_plus, images = model.invert(faces_32)
    assert w_plus.shape == (2, generator.n_latent, generator.style_dim)
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
    again = tiny_e4e(generator, seed=0)(faces_32)
    torch.testing.assert_close(again, w_plus)  # seeded
    assert any(p.requires_grad for p in generator.parameters())  # the shared generator is left trainable
