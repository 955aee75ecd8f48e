"""The studies behind notebooks 01-05 on the quick smoke profile: rows, images, grids, baselines hook."""
import pytest
import torch

from dclip.studies import experiments, manipulation
from dclip.method.ddim import generate, invert
from dclip.studies.paper_numbers import TABLE1_RECONSTRUCTION


@pytest.fixture
def faces(quick_context):
    return quick_context.world.images("celeba_hq")


def plain_reconstruction(model, x, t0, s_inv, s_gen, exact=False):
    """The hand-written inversion + generation the studies' shared latents must reproduce bit for bit."""
    with torch.no_grad():
        return generate(model, invert(model, x, t0, s_inv, exact=exact), t0, s_gen)


@pytest.fixture
def counted_inversions(monkeypatch):
    """(kind, t0, S_inv) of every inversion with an original model; edits must not invert by themselves."""
    import dclip.method.accelerated
    import dclip.method.edit
    import dclip.method.latents

    seen = []
    real_precompute, real_invert = dclip.method.latents.precompute, dclip.method.accelerated.invert_fast

    def precompute(model, x, t0, steps, **kwargs):
        seen.append(("precompute", t0, steps))
        return real_precompute(model, x, t0, steps, **kwargs)

    def invert(model, x, t0, steps, **kwargs):
        seen.append(("invert", t0, steps))
        return real_invert(model, x, t0, steps, **kwargs)

    monkeypatch.setattr(dclip.method.latents, "precompute", precompute)
    monkeypatch.setattr(dclip.method.accelerated, "invert_fast", invert)
    monkeypatch.setattr(dclip.method.edit, "inversion_loop", lambda *a, **k: pytest.fail("an edit inverted again"))
    return seen


def test_reconstruction_rows_sit_beside_table1(quick_context, faces):
    study = experiments.reconstruction_study(quick_context, faces, (300, 600))
    assert [(r["inversion"], r["t0"]) for r in study.rows] == [
        ("DDIM (paper)", 300), ("DDIM (paper)", 600), ("exact (dclip)", 300), ("exact (dclip)", 600)]
    assert study.rows[0]["paper_mae"] == TABLE1_RECONSTRUCTION[300]["mae"]
    assert study.rows[2]["paper_lpips"] is None and study.rows[0]["S"] == quick_context.profile.n_inv
    ddim, exact = study.rows[0], study.rows[2]
    assert exact["mae"] < ddim["mae"]  # the fixed-point inversion lands closer to the input
    unet, s = quick_context.unet("celeba_hq"), quick_context.profile.n_inv
    assert torch.equal(study.images["ddim_600"], plain_reconstruction(unet, faces, 600, s, s))
    assert torch.equal(study.images["exact_300"], plain_reconstruction(unet, faces, 300, s, s, exact=True))
    assert len(study.grid) == 2 and len(study.grid[0]) == 5 and study.col_labels[1] == "DDIM t0=300"


def test_reconstruction_is_deterministic(quick_context, faces):
    a = experiments.reconstruction_study(quick_context, faces, (400,), exact=False)
    b = experiments.reconstruction_study(quick_context, faces, (400,), exact=False)
    assert a.rows == b.rows


def test_manipulation_study_with_a_registered_baseline(quick_context, monkeypatch):
    monkeypatch.setattr(manipulation, "BASELINES", {})  # the registry run_baseline reads
    calls = []

    def flip_up(ctx, attrs, originals):  # a stand-in GAN method for faces, returning larger images
        calls.append([a.target for a in attrs])
        if attrs[0].domain != "celeba_hq":
            return None
        return [torch.nn.functional.interpolate(originals.flip(-1), scale_factor=2) for _ in attrs]

    experiments.register_baseline("Flip", flip_up)
    study = experiments.manipulation_study(quick_context, ["tanned", "church_golden", "makeup"], baselines=["Flip"])
    assert calls == [["tanned face", "person with makeup"], ["Golden Church"]]  # once per domain
    assert [(r["method"], r["attribute"]) for r in study.rows] == [
        ("DiffusionCLIP", "tanned"), ("DiffusionCLIP", "makeup"), ("Flip", "tanned"), ("Flip", "makeup"),
        ("DiffusionCLIP", "church_golden")]
    assert study.rows[0]["id"] is not None and study.rows[4]["id"] is None  # identity on faces only
    assert study.rows[0]["id_net"] == "facenet VGGFace2 (random)" and study.rows[4]["id_net"] is None
    summary = {(r["method"], r["domain"]): r for r in study.extra["summary"]}
    assert summary[("DiffusionCLIP", "celeba_hq")]["paper_s_dir"] == 0.17
    assert summary[("Flip", "celeba_hq")]["paper_s_dir"] is None and summary[("Flip", "celeba_hq")]["n"] == 2
    assert study.images["Flip/tanned"].shape == (2, 3, 32, 32)
    # one row per prompt and test image; the method without an edit for churches is left blank
    assert study.row_labels == ["tanned 1", "tanned 2", "church_golden 1", "church_golden 2", "makeup 1", "makeup 2"]
    assert study.col_labels == ["original", "Flip", "DiffusionCLIP\nreconstruction", "DiffusionCLIP"]
    assert study.grid[2][1] is None and study.captions[2] == ["", "n/a", "", ""]
    assert not any("e4e" in note for note in quick_context.notes)  # no GAN baselines asked for
    assert summary[("Flip", "celeba_hq")]["id_net"] == "facenet VGGFace2 (random)"


GAN_QUICK = dict(projection_steps=2, styleclip_steps=1, nada_iterations=1, gd_images=2)  # GD: 100 images by default


def test_manipulation_study_with_the_gan_baselines(quick_context, monkeypatch):
    import dclip.baselines.comparison as gan

    runs = []
    real_run = gan.run_gan_baselines

    def counted(faces, prompts, **kwargs):
        runs.append(list(prompts))
        return real_run(faces, prompts, **kwargs)

    monkeypatch.setattr(gan, "run_gan_baselines", counted)
    quick_context.gan_settings = gan.GanBaselineSettings(**GAN_QUICK)
    names = ["tanned", "pixar", "church_golden"]
    study = experiments.manipulation_study(quick_context, names, gan_baselines=True)

    # one GAN run (e4e + one projection) for every method and both face prompts; none for the church
    assert runs == [[("face", "tanned face"), ("Human", "3D render in the style of Pixar")]]
    assert experiments.GAN_METHODS == gan.METHODS
    assert [(r["method"], r["attribute"]) for r in study.rows] == [
        ("DiffusionCLIP", "tanned"), ("DiffusionCLIP", "pixar"), ("StyleCLIP", "tanned"), ("StyleCLIP", "pixar"),
        ("StyleCLIP (global directions)", "tanned"), ("StyleCLIP (global directions)", "pixar"),
        ("StyleCLIP (optimisation)", "tanned"), ("StyleCLIP (optimisation)", "pixar"),
        ("StyleGAN-NADA", "tanned"), ("StyleGAN-NADA", "pixar"), ("DiffusionCLIP", "church_golden")]
    assert all(isinstance(r["s_dir"], float) and (r["id"] is None) == (r["domain"] != "celeba_hq")
               for r in study.rows)

    # Table 3 beside the paper: the paper's prompts only; Pixar is "other", without paper numbers
    summary = {(r["method"], r["domain"], r["prompts"]): r for r in study.extra["summary"]}
    assert set(summary) == {(m, "celeba_hq", p) for m in ("DiffusionCLIP", *gan.METHODS)
                            for p in ("Table 3", "other")} | {("DiffusionCLIP", "lsun_church", "Table 3")}
    assert (summary[("StyleCLIP", "celeba_hq", "Table 3")]["paper_s_dir"],
            summary[("StyleCLIP", "celeba_hq", "Table 3")]["paper_id"]) == (0.13, 0.35)
    assert summary[("StyleGAN-NADA", "celeba_hq", "Table 3")]["paper_id"] == 0.42
    assert summary[("DiffusionCLIP", "lsun_church", "Table 3")]["paper_s_dir"] == 0.20
    assert summary[("StyleCLIP", "celeba_hq", "other")]["paper_s_dir"] is None
    assert summary[("StyleCLIP (optimisation)", "celeba_hq", "Table 3")]["paper_s_dir"] is None  # the paper's is e4e

    # Table 1 beside the paper, measured: e4e, the shared projection, DiffusionCLIP per t0
    recon = [(r["method"], r["inversion"], r["domain"], r["t0"]) for r in study.extra["reconstruction"]]
    assert recon == [("StyleCLIP / StyleCLIP (global directions)", "e4e", "celeba_hq", None),
                     ("StyleCLIP (optimisation) / StyleGAN-NADA", "optimisation (W+)", "celeba_hq", None),
                     ("DiffusionCLIP", "DDIM", "celeba_hq", 201), ("DiffusionCLIP", "DDIM", "celeba_hq", 601),
                     ("DiffusionCLIP", "DDIM", "lsun_church", 401)]
    e4e, optimisation, _, at_601, church = study.extra["reconstruction"]
    assert optimisation["paper_mae"] == 0.061 and 0 < optimisation["mae"] and 0 < optimisation["ssim"] <= 1
    assert (e4e["paper_mae"], e4e["paper_lpips"], e4e["paper_ssim"]) == (0.092, 0.221, 0.742)
    assert 0 < e4e["mae"] and e4e["mae"] != optimisation["mae"] and 0 < e4e["lpips"]
    assert at_601["paper_mae"] == 0.024 and church["paper_mae"] is None  # the authors' 601 is Table 1's 600

    # images at the test images' size; no GAN images for the church
    for key in ("GAN inversion (e4e)/celeba_hq", "GAN inversion (optimisation (W+))/celeba_hq", "StyleCLIP/pixar",
                "StyleCLIP (optimisation)/tanned", "StyleGAN-NADA/tanned",
                "DiffusionCLIP reconstruction/tanned", "DiffusionCLIP/church_golden"):
        assert study.images[key].shape == (2, 3, 32, 32), key
    assert "StyleCLIP/church_golden" not in study.images and "GAN inversion (e4e)/lsun_church" not in study.images

    # Fig. 5's layout: original | both GAN inversions | the four GAN edits | reconstruction | DiffusionCLIP
    assert study.col_labels == ["original", "GAN inversion\n(e4e)", "GAN inversion\n(optimisation (W+))", "StyleCLIP",
                                "StyleCLIP\n(global directions)", "StyleCLIP\n(optimisation)", "StyleGAN-NADA",
                                "DiffusionCLIP\nreconstruction", "DiffusionCLIP"]
    assert study.row_labels == ["tanned 1", "tanned 2", "pixar 1", "pixar 2", "church_golden 1", "church_golden 2"]
    assert all(len(row) == 9 for row in study.grid)
    assert torch.equal(study.grid[1][1], study.images["GAN inversion (e4e)/celeba_hq"][1])
    assert torch.equal(study.grid[1][2], study.images["GAN inversion (optimisation (W+))/celeba_hq"][1])
    assert study.grid[4][1:7] == [None] * 6 and study.grid[4][7] is not None
    assert study.captions[4] == ["", *["n/a: faces only"] * 6, "", ""]

    # the notes say what the paper did instead, and why churches have no GAN column
    assert gan.RESTYLE_NOT_INCLUDED in quick_context.notes
    assert any(note.startswith("lsun_church: no GAN baseline") for note in quick_context.notes)

    # the registered hooks read the same run: no second inversion
    faces = quick_context.world.images("celeba_hq")
    nada = experiments.run_baseline(quick_context, "StyleGAN-NADA", ["tanned", "pixar"], faces)
    assert len(runs) == 1 and torch.equal(nada[1].edited, study.images["StyleGAN-NADA/pixar"])
    assert experiments.run_baseline(quick_context, "StyleCLIP", ["church_golden"], faces) == []


def unchanged(ctx, attrs, originals):
    """A baseline that edits nothing (imported by name in the test below)."""
    return [originals.clone() for _ in attrs]


def test_lazy_baseline_names_and_unknown_baselines(quick_context, faces, monkeypatch):
    monkeypatch.setattr(manipulation, "BASELINES", {})  # the registry run_baseline reads
    experiments.register_baseline("Same", f"{__name__}:unchanged")
    edits = experiments.run_baseline(quick_context, "Same", ["makeup"], faces)
    assert torch.equal(edits[0].edited, faces) and edits[0].source == "person"
    rows = experiments.edit_rows(quick_context, edits)
    assert rows[0]["s_dir"] == 0.0  # no change: no image direction
    with pytest.raises(ValueError, match="register_baseline"):
        experiments.run_baseline(quick_context, "StyleCLIP", ["makeup"], faces)
    with pytest.raises(ValueError, match="one domain"):
        experiments.run_baseline(quick_context, "Same", ["makeup", "church_golden"], faces)
    experiments.register_baseline("Short", lambda ctx, attrs, originals: [])
    with pytest.raises(ValueError, match="0 edited batches for 1"):
        experiments.run_baseline(quick_context, "Short", ["makeup"], faces)


def test_summary_rows_average_per_method_and_domain():
    rows = [{"method": "M", "domain": "celeba_hq", "s_dir": 0.1, "id": 0.5},
            {"method": "M", "domain": "celeba_hq", "s_dir": 0.3, "id": 0.7},
            {"method": "M", "domain": "lsun_church", "s_dir": 0.2, "id": None}]
    out = experiments.summary_rows(rows)
    assert out[0]["s_dir"] == pytest.approx(0.2) and out[0]["id"] == pytest.approx(0.6) and out[0]["n"] == 2
    assert out[0]["prompts"] == "other" and out[0]["paper_s_dir"] is None  # not Table 3's prompts
    assert out[1]["id"] is None


def test_summary_rows_keep_table3_prompts_apart_from_the_rest():
    rows = [{"method": "DiffusionCLIP", "domain": "celeba_hq", "attribute": "makeup", "s_dir": 0.2, "id": 0.6},
            {"method": "DiffusionCLIP", "domain": "celeba_hq", "attribute": "pixar", "s_dir": 0.4, "id": 0.2},
            {"method": "DiffusionCLIP", "domain": "celeba_hq", "attribute": "tanned", "s_dir": 0.1, "id": 0.8}]
    table3, other = experiments.summary_rows(rows)
    assert (table3["prompts"], table3["n"], table3["paper_s_dir"], table3["paper_id"]) == ("Table 3", 2, 0.17, 0.70)
    assert table3["s_dir"] == pytest.approx(0.15) and table3["id"] == pytest.approx(0.7)
    assert (other["prompts"], other["n"], other["paper_s_dir"]) == ("other", 1, None)


def test_step_ablation_covers_every_pair(quick_context, faces):
    study = experiments.step_ablation(quick_context, faces[:1], t0=600, steps=(2, 4))
    assert [(r["S_inv"], r["S_gen"]) for r in study.rows] == [(2, 2), (2, 4), (4, 2), (4, 4)]
    unet = quick_context.unet("celeba_hq")
    for a, b in [(2, 2), (2, 4), (4, 2), (4, 4)]:
        assert torch.equal(study.images[f"rec_{a}_{b}"], plain_reconstruction(unet, faces[:1], 600, a, b))
    assert study.grid[0][0] is not None and study.grid[1][0] is None  # the original once, top left
    assert study.row_labels == ["S_inv=2", "S_inv=4"] and study.col_labels == ["original", "S_gen=2", "S_gen=4"]


def test_manipulation_study_inverts_once_per_domain_and_t0(quick_context, counted_inversions, monkeypatch):
    from dclip.method.edit import edit

    names = ["makeup", "gray_hair", "church_golden", "church_red_brick"]
    study = experiments.manipulation_study(quick_context, names)
    p = quick_context.profile
    assert p.n_inv_train == p.n_inv  # as at the paper profile: fine-tuning shares the test latents too
    assert counted_inversions == [("precompute", 301, p.n_inv), ("precompute", 401, p.n_inv)]
    monkeypatch.undo()
    # the same numbers as inverting for every edit and again for the reconstruction
    unet, faces = quick_context.unet("celeba_hq"), quick_context.world.images("celeba_hq")
    assert torch.equal(study.images["DiffusionCLIP reconstruction/gray_hair"],
                       plain_reconstruction(unet, faces, 301, p.n_inv, p.n_gen))
    direct = edit(unet, quick_context.finetune("gray_hair"), faces, 301, n_inv=p.n_inv, n_gen=p.n_gen)
    assert torch.equal(study.images["DiffusionCLIP/gray_hair"], direct)


def test_reconstructions_with_another_s_gen(quick_context, faces):
    import dataclasses

    quick_context.profile = dataclasses.replace(quick_context.profile, n_gen=3)
    recs = experiments.diffusion_reconstructions(quick_context, ["makeup", "tanned"], faces)
    assert list(recs) == [201, 301] and recs[301].device == faces.device
    assert torch.equal(recs[301], plain_reconstruction(quick_context.unet("celeba_hq"), faces, 301, 4, 3))


def test_t0_ablation_finetunes_at_each_t0(quick_context):
    study = experiments.t0_ablation(quick_context, ["tanned"], (300, 500))
    assert [(r["attribute"], r["t0"]) for r in study.rows] == [("tanned", 300), ("tanned", 500)]
    assert not torch.equal(study.images["tanned_300"], study.images["tanned_500"])
    n = len(study.images["original/tanned"])  # the test images an edit is measured on (the profile's n_test)
    assert len(study.grid) == min(4, n) and len(study.grid[0]) == 3  # one row per face shown, a column per t0


def test_prompts_at_one_t0_share_the_edits_inversion(quick_context, counted_inversions):
    experiments.t0_ablation(quick_context, ["tanned", "pixar"], (300,))
    experiments.latent_vs_finetune(quick_context, ["neanderthal", "gogh"])
    n_inv = quick_context.profile.n_inv
    # one inversion per images and t0, not one per prompt: the t0 ablation and Fig. 9 edit the test images, which
    # are the training images here, so both reuse the fine-tunes' latents (S_inv alike here)
    assert counted_inversions == [("precompute", 300, n_inv), ("precompute", 601, n_inv)]


def test_latent_vs_finetune_rows_and_grid(quick_context):
    study = experiments.latent_vs_finetune(quick_context, ["pixar"])
    assert [r["method"] for r in study.rows] == ["latent optimisation", "fine-tuning"]
    assert study.images["latent/pixar"].shape == study.images["finetune/pixar"].shape == (2, 3, 32, 32)
    # faces as columns; rows: original | latent optimisation | fine-tuning | |Δ| (no true edit: photos)
    assert study.row_labels == ["pixar: original", "pixar: latent optimisation", "pixar: fine-tuning", "pixar: |Δ|"]
    assert len(study.grid[0]) == 2 and all(n == "" for row in study.notes for n in row)  # no judge here


def test_novel_applications_rows_images_and_seeding(quick_context, faces):
    kwargs = dict(gammas={300: [1.0, 0.0], 0: [0.5, 0.5]}, n_segments=8)
    study = experiments.novel_applications(quick_context, faces, **kwargs)
    assert [r["application"] for r in study.rows] == [
        "unseen -> unseen", "stroke -> unseen", "single attribute", "multi-attribute mix", "single attribute",
        "multi-attribute mix"]
    assert [len(row) for row in study.grid] == [3, 4]
    mix = study.panels["mix"]  # (c): the same faces under each model and the mix
    assert mix.row_labels == ["original", "curly_hair alone", "makeup alone", "curly_hair + makeup (eq. 14)"]
    assert [len(row) for row in mix.grid] == [len(faces)] * 4
    again = experiments.novel_applications(quick_context, faces, **kwargs)
    assert torch.equal(study.images["a/edited"], again.images["a/edited"])  # the forward noise is seeded
    # (c) from one shared inversion: the numbers edit_multi and edit give when each inverts by itself
    from dclip.method.edit import edit, edit_multi

    unet, p = quick_context.unet("celeba_hq"), quick_context.profile
    models = [quick_context.finetune("curly_hair"), quick_context.finetune("makeup")]
    mixed = edit_multi(unet, models, faces, 401, kwargs["gammas"], n_inv=p.n_inv, n_gen=p.n_gen)
    assert torch.equal(study.images["c/mixed"], mixed)
    assert torch.equal(study.images["c/makeup"], edit(unet, models[1], faces, 401, n_inv=p.n_inv, n_gen=p.n_gen))


def test_study_figure_is_stamped(quick_context, faces):
    study = experiments.reconstruction_study(quick_context, faces, (300,), exact=False)
    fig = study.figure(quick_context.profile.stamp)
    assert any("smoke profile" in t.get_text() for t in fig.texts)
