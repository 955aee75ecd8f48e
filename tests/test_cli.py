"""python -m dclip: a fine-tune and an edit end to end on the tiny models, the README's CPU path as it writes it,
and one-line errors."""
import re
import shlex
from pathlib import Path

import pytest
import torch

from dclip.cli import main
from dclip.data.images import sample_photos, save_image


def test_finetune_then_edit(tmp_path, capsys):
    out = tmp_path / "pixar"
    args = ["finetune", "--model", "tiny", "--clip", "tiny", "--attribute", "pixar", "--n-images", "2",
            "--n-iter", "1", "--n-inv", "6", "--n-gen", "3", "--t0", "300", "--cache", str(tmp_path / "cache"),
            "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    assert (tmp_path / "pixar.safetensors").is_file() and (tmp_path / "pixar.json").is_file()
    assert "3D render in the style of Pixar" in capsys.readouterr().out
    photo = save_image(sample_photos(("astronaut",), size=32), tmp_path / "in.png")
    assert main(["edit", "--model", "tiny", "--finetuned", str(tmp_path / "pixar.safetensors"), "--image",
                 str(photo), "--t0", "300", "--n-inv", "6", "--n-gen", "6", "--out", str(tmp_path / "out.png"),
                 "--no-progress", "--device", "cpu"]) == 0
    assert (tmp_path / "out.png").is_file()


def test_bad_t0_is_a_one_line_error(tmp_path, capsys):
    code = main(["precompute", "--model", "tiny", "--t0", "5000", "--n-images", "1", "--cache", str(tmp_path),
                 "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "t0 must be" in err


def test_finetune_without_texts_is_an_error(tmp_path, capsys):
    code = main(["finetune", "--model", "tiny", "--clip", "tiny", "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert code == 2 and "--attribute" in capsys.readouterr().err


def test_unknown_attribute_lists_presets(tmp_path, capsys):
    code = main(["finetune", "--model", "tiny", "--attribute", "nope", "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert code == 2 and "makeup" in capsys.readouterr().err


def test_missing_required_flag_exits_with_usage():
    with pytest.raises(SystemExit) as err:
        main(["edit", "--model", "tiny"])
    assert err.value.code == 2


def test_recipes_and_presets_combine_as_documented():
    from dclip.cli import build_parser
    from dclip.cli.commands import _finetune_config

    def cfg(*extra):
        return _finetune_config(build_parser().parse_args(["finetune", "--attribute", "makeup", "--out", "x", *extra]))

    assert cfg().lambda_id == 0.1 and cfg().t0 == 301  # the paper: λ_ID 0.1 for in-domain face edits
    readme = cfg("--recipe", "authors_readme")
    assert (readme.lambda_id, readme.lr, readme.lambda_clip) == (0.0, 8e-6, 3.0)  # the authors' command
    assert cfg("--lambda-id", "0.5").lambda_id == 0.5


def test_cli_honours_the_attributes_l1_flag(monkeypatch):
    """The attribute decides λ_L1 through dclip.method.finetune.attribute_config, as in the notebooks."""
    from dclip.cli import build_parser
    from dclip.cli.commands import _finetune_config
    from dclip.method import attributes

    monkeypatch.setitem(attributes.ATTRIBUTES, "no_l1", attributes.Attribute("face", "stone face", 401, use_l1=False))

    def cfg(*extra):
        return _finetune_config(build_parser().parse_args(["finetune", "--attribute", "no_l1", "--out", "x", *extra]))

    assert (cfg().lambda_l1, cfg().lambda_id, cfg().t0) == (0.0, 0.0, 401)
    assert cfg("--recipe", "authors_readme").lambda_l1 == 0.0
    assert cfg("--lambda-l1", "0.2").lambda_l1 == 0.2  # an explicit flag still wins


def test_edit_defaults_to_the_trained_t0(tmp_path):
    import json

    from dclip.cli.commands import _trained_t0

    (tmp_path / "m.json").write_text(json.dumps({"hyperparameters": {"t0": 601}}))
    assert _trained_t0(str(tmp_path / "m.safetensors")) == 601
    assert _trained_t0(str(tmp_path / "other.safetensors")) == 400


def _two_finetuned(tmp_path):
    """Two 'fine-tuned' tiny models (the tiny UNet with different small perturbations), saved as the CLI reads them."""
    import torch

    import dclip
    from dclip.method.finetune import FinetuneResult, recipe, save_finetuned

    paths = []
    for seed in (1, 2):
        model = dclip.load_unet("tiny")
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=generator))
        config = recipe("paper", "face", f"face {seed}", t0=300)
        paths.append(str(save_finetuned(FinetuneResult(model, config), tmp_path / f"m{seed}")))
    return paths


def _png(path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_edit_gammas_weights_the_models_by_the_schedule(tmp_path):
    """--gammas '0:1,0' is the first model's edit and '0:0,1' the second's; a 50/50 mix is neither."""
    import numpy as np

    a, b = _two_finetuned(tmp_path)
    photo = save_image(sample_photos(("astronaut",), size=32), tmp_path / "in.png")

    def run(name, *finetuned, gammas=None):
        out = tmp_path / f"{name}.png"
        extra = ["--gammas", gammas] if gammas else []
        assert main(["edit", "--model", "tiny", "--finetuned", *finetuned, "--image", str(photo), "--t0", "300",
                     "--n-inv", "4", "--n-gen", "4", "--out", str(out), "--no-progress", "--device", "cpu",
                     *extra]) == 0
        return _png(out)

    only_a, only_b = run("a", a), run("b", b)
    assert np.array_equal(run("mix_a", a, b, gammas="0:1,0"), only_a)
    assert np.array_equal(run("mix_b", a, b, gammas="0:0,1"), only_b)
    assert not np.array_equal(only_a, only_b)
    half = run("half", a, b, gammas="300:1,0;0:0.5,0.5")
    assert not np.array_equal(half, only_a) and not np.array_equal(half, only_b)


def test_edit_align_frames_the_face_before_editing(tmp_path):
    """--align: the 'original' half of the output is the MTCNN-aligned crop, not the centre crop."""
    import matplotlib.cbook
    import numpy as np
    from PIL import Image

    from dclip.data.images import to_pil, to_tensor

    a, _ = _two_finetuned(tmp_path)
    folder = tmp_path / "photos"
    folder.mkdir()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = Image.open(f).convert("RGB")
    photo.save(folder / "hopper.png")
    common = ["edit", "--model", "tiny", "--finetuned", a, "--t0", "300", "--n-inv", "4", "--n-gen", "4",
              "--no-progress", "--device", "cpu"]
    assert main([*common, "--images", str(folder), "--align", "--out", str(tmp_path / "aligned")]) == 0
    assert main([*common, "--images", str(folder), "--out", str(tmp_path / "cropped")]) == 0
    aligned, cropped = _png(tmp_path / "aligned" / "hopper.png"), _png(tmp_path / "cropped" / "hopper.png")
    assert aligned.shape == cropped.shape == (32, 32, 3) and not np.array_equal(aligned, cropped)
    # the edit of the centre crop is the same with --image (no alignment there)
    assert main([*common, "--image", str(folder / "hopper.png"), "--out", str(tmp_path / "single.png")]) == 0
    single = _png(tmp_path / "single.png")
    assert np.array_equal(single[:, 32:], cropped)
    assert np.array_equal(single[:, :32], np.asarray(to_pil(to_tensor(photo, 32))[0], dtype=np.int16))


def test_precompute_out_writes_originals_over_reconstructions(tmp_path, capsys):
    import numpy as np

    from dclip.data.images import to_pil

    out = tmp_path / "grid.png"
    assert main(["precompute", "--model", "tiny", "--n-images", "2", "--t0", "300", "--n-inv", "6",
                 "--cache", str(tmp_path / "cache"), "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    grid = _png(out)
    assert grid.shape == (64, 64, 3)  # two images side by side; originals above, reconstructions below
    originals = np.concatenate([np.asarray(p, dtype=np.int16)
                                for p in to_pil(sample_photos(("grace_hopper", "astronaut"), size=32))], axis=1)
    assert np.array_equal(grid[:32], originals)
    mae = float(capsys.readouterr().out.split("reconstruction MAE ")[1].split()[0])
    # the printed MAE (in [-1, 1] units) is the bottom row's distance from the top, up to 8-bit rounding
    assert abs(np.abs(grid[32:] - grid[:32]).mean() / 127.5 - mae) < 0.01


def test_performance_flags_go_to_the_fast_path_not_the_config(monkeypatch):
    from dclip.cli import build_parser
    from dclip.cli.commands import _fast, _finetune_config

    parse = build_parser().parse_args
    args = parse(["finetune", "--attribute", "makeup", "--out", "x", "--grad-checkpointing", "--bf16", "--device", "cpu"])
    fast = _fast(args)
    assert fast.grad_checkpointing and fast.autocast == "bf16"  # asked for: bf16 also on a CPU without native bf16
    assert not hasattr(_finetune_config(args), "grad_checkpointing")
    plain = ["finetune", "--attribute", "makeup", "--out", "x", "--device", "cpu"]
    assert _fast(parse(plain)).autocast is None  # DCLIP_CPU_BF16=0 (tests/conftest.py): an fp32 CPU
    monkeypatch.setenv("DCLIP_CPU_BF16", "1")  # a CPU with native bf16
    assert _fast(parse(plain)).name == "cpu-bf16"
    assert _fast(parse([*plain, "--fp32"])).autocast is None
    edit = parse(["edit", "--finetuned", "m.safetensors", "--image", "a.png", "--out", "o.png", "--fp32"])
    assert _fast(edit).autocast is None and not _fast(edit).grad_checkpointing
    with pytest.raises(SystemExit):
        parse([*plain, "--fp32", "--bf16"])  # one or the other


def test_finetune_reuse_reads_an_identical_earlier_fine_tune_from_the_disk_cache(tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.setenv("DCLIP_CACHE", str(tmp_path / "cache"))
    common = ["finetune", "--model", "tiny", "--clip", "tiny", "--attribute", "pixar", "--n-images", "1",
              "--n-iter", "1", "--n-inv", "4", "--n-gen", "2", "--t0", "300", "--no-progress", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "cache" / "finetuned").exists()  # without --reuse nothing is kept
    assert main([*common, "--reuse", "--out", str(tmp_path / "first")]) == 0
    assert "updates" in capsys.readouterr().out
    assert main([*common, "--reuse", "--out", str(tmp_path / "again")]) == 0
    assert "read from the disk cache" in capsys.readouterr().out
    first, again = load_file(tmp_path / "first.safetensors"), load_file(tmp_path / "again.safetensors")
    plain = load_file(tmp_path / "plain.safetensors")
    assert all(torch.equal(first[k], again[k]) and torch.equal(first[k], plain[k]) for k in first)


def test_one_command_entry_runs_the_developer_tools(capsys):
    """`python -m dclip figures | toy | portability` hand the rest of the line to the tool's own parser."""
    from dclip.cli import TOOLS, build_parser, main

    listing = build_parser().format_help()
    for name in TOOLS:
        assert name in listing
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0 and f"usage: python -m dclip {name}" in capsys.readouterr().out


# -- the toy world as a model preset ------------------------------------------------------------------------------

def test_help_lists_every_model_preset_toy_included(capsys):
    from dclip.models.unet import PRESETS

    for command in ("precompute", "finetune", "edit"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert done.value.code == 0 and all(name in text for name in PRESETS), command
        assert "toy: the toy world's DDPM" in text
        if command == "finetune":
            assert "default: toy with --model toy" in text and "0 with --model toy" in text


def test_toy_model_takes_the_notebooks_toy_recipe_and_no_identity_term(monkeypatch):
    """`finetune --model toy --clip toy` builds the config the notebooks' toy world builds (toy profile recipe,
    λ_ID 0), from the same definitions; a flag given still wins."""
    from dclip.cli import _parse
    from dclip.cli.commands import _finetune_config
    from dclip.cli.toy import notes
    from dclip.notebook import profiles
    from dclip.notebook.memo import Memo
    from dclip.notebook.profiles import PROFILES
    from dclip.notebook.worlds import ToyWorld

    monkeypatch.setattr(profiles, "TOY_EDIT_RECIPES", {})  # the profile's recipe alone (per edit: the next test)
    toy = PROFILES["toy"]
    args = _parse(["finetune", "--model", "toy", "--clip", "toy", "--attribute", "angry", "--out", "x"])
    config = _finetune_config(args)
    assert (config.lambda_id, config.lr, config.n_iter, config.n_gen) == (0.0, toy.lr, toy.n_iter, toy.n_gen_train)
    assert (config.lr, config.n_iter, config.n_gen, args.n_images, args.clip) == (3e-5, 6, 6, 8, "toy")
    world = ToyWorld(toy, torch.device("cpu"), Memo(), print, image_dirs={}, train_dirs={})
    assert config == world.finetune_config("angry")
    lines = notes(args, config)
    assert len(lines) == 2 and "λ_ID is 0" in lines[1] and "\n" not in "".join(lines)
    assert _parse(["finetune", "--model", "toy", "--attribute", "angry", "--out", "x"]).clip == "toy"

    given = _parse(["finetune", "--model", "toy", "--attribute", "angry", "--lr", "1e-5", "--lambda-id", "0.2",
                    "--n-images", "4", "--out", "x"])
    config = _finetune_config(given)
    assert (config.lr, config.lambda_id, config.n_iter, given.n_images) == (1e-5, 0.2, toy.n_iter, 4)
    assert notes(given, config)[0].startswith("--model toy: the toy profile's recipe (t0 301, lr 1e-05")
    authors = _finetune_config(_parse(["finetune", "--model", "toy", "--attribute", "angry", "--recipe",
                                       "authors_readme", "--out", "x"]))
    assert (authors.lr, authors.n_iter, authors.lambda_id) == (8e-6, 5, 0.0)  # the recipe named; still no ID term
    paper = _parse(["finetune", "--attribute", "angry", "--out", "x"])  # other models: nothing changes
    assert (_finetune_config(paper).lambda_id, paper.n_images, paper.clip) == (0.1, 50, "ViT-B-16-quickgelu")
    assert notes(paper, _finetune_config(paper)) == []


def test_a_toy_edit_takes_its_own_recipe_in_the_cli_and_the_notebooks(monkeypatch):
    """An edit in TOY_EDIT_RECIPES changes lr, passes and λ_L1 the same way for `finetune --model toy` and the
    notebooks' toy world; the paper profile, free texts and a flag given ignore it."""
    from dclip.cli import _parse
    from dclip.cli.commands import _finetune_config
    from dclip.cli.toy import notes
    from dclip.method.attributes import attribute
    from dclip.notebook import profiles
    from dclip.notebook.memo import Memo
    from dclip.notebook.worlds import ToyWorld

    assert all("t0" not in r for r in profiles.TOY_EDIT_RECIPES.values())  # studies edit at the attribute's t0
    monkeypatch.setattr(profiles, "TOY_EDIT_RECIPES", {"angry": {"lr": 1e-4, "n_iter": 12, "lambda_l1": 0.1}})
    args = _parse(["finetune", "--model", "toy", "--attribute", "angry", "--out", "x"])
    config = _finetune_config(args)
    assert (config.t0, config.lr, config.n_iter, config.lambda_l1, config.lambda_id) == (301, 1e-4, 12, 0.1, 0.0)
    world = ToyWorld(profiles.PROFILES["toy"], torch.device("cpu"), Memo(), print, image_dirs={}, train_dirs={})
    assert world.finetune_config("angry") == world.finetune_config(attribute("angry")) == config
    assert world.finetune_config("smiling").lr == profiles.PROFILES["toy"].lr  # an edit without a recipe of its own
    assert notes(args, config)[0].startswith("--model toy: angry's toy recipe (t0 301, lr 0.0001, 12 passes")
    given = _finetune_config(_parse(["finetune", "--model", "toy", "--attribute", "angry", "--t0", "401", "--lr",
                                     "2e-5", "--out", "x"]))
    assert (given.t0, given.lr, given.n_iter) == (401, 2e-5, 12)
    free = _finetune_config(_parse(["finetune", "--model", "toy", "--source", "face", "--target", "angry face",
                                    "--out", "x"]))
    assert (free.t0, free.lr) == (400, profiles.PROFILES["toy"].lr)
    paper = _finetune_config(_parse(["finetune", "--attribute", "angry", "--out", "x"]))
    assert (paper.t0, paper.lr) == (301, 1e-6)


def test_toy_faces_writes_n_pngs(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    assert main(["toy", "faces", str(tmp_path / "test"), "--n", "3"]) == 0
    pngs = sorted((tmp_path / "test").glob("*.png"))
    assert [p.name for p in pngs] == ["00.png", "01.png", "02.png"] and "wrote 3 toy faces" in capsys.readouterr().out
    with Image.open(pngs[0]) as image:
        assert image.size == (32, 32) and image.mode == "RGB"
    records = json.loads((tmp_path / "test" / "faces.json").read_text())
    assert list(records) == ["00.png", "01.png", "02.png"] and records["00.png"]["glasses"] == "no"
    assert main(["toy", "faces", str(tmp_path / "val"), "--n", "3", "--split", "validation"]) == 0
    with Image.open(pngs[0]) as a, Image.open(tmp_path / "val" / "00.png") as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))  # other faces
    assert main(["toy", "faces", str(tmp_path / "calm"), "--n", "4", "--lacking", "angry"]) == 0
    calm = json.loads((tmp_path / "calm" / "faces.json").read_text())
    assert len(calm) == 4 and all(r["expression"] != "frowning" for r in calm.values())


README = Path(__file__).resolve().parents[1] / "README.md"
CPU_SECTION, PYTHON_SECTION = "An edit on a CPU, from the command line", "Using it from Python"


def readme_block(heading: str, language: str) -> str:
    """The first ```language block of the README's section ``## heading`` (the README's own text, not a copy)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    found = re.compile(rf"^```{language}\n(.*?)^```", re.S | re.M).search(text, start, end if end > 0 else len(text))
    assert found, f"README section {heading!r} has no {language} block"
    return found.group(1)


def readme_commands() -> list[list[str]]:
    """The ``python -m dclip ...`` lines of the README's CPU section, as argument lists (comments dropped)."""
    lines = [shlex.split(line, comments=True) for line in readme_block(CPU_SECTION, "bash").splitlines()]
    return [words[3:] for words in lines if words[:3] == ["python", "-m", "dclip"]]


def _judged(before: torch.Tensor, after: torch.Tensor) -> dict:
    from dclip.toy.judging import edit_outcomes
    from dclip.toy.nets import load_judge

    return edit_outcomes(load_judge(), before, after, "glasses")


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory):
    """A folder in which the README's first command ran, at reduced size: 4 held-out faces instead of 8."""
    folder = tmp_path_factory.mktemp("readme")
    first = readme_commands()[0]
    assert first[:2] == ["toy", "faces"] and first[first.index("--n") + 1] == "8", first
    first[first.index("--n") + 1] = "4"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main(first) == 0
    return folder


def test_the_readme_cpu_path_makes_a_judged_edit(readme_dir, monkeypatch):
    """The README's CPU commands as it writes them (toy faces, fine-tune, edit; 4 faces instead of 8, no progress
    bars). The judge reads glasses on at least 3 of the 4 edited faces (none wore them) and accepts every edit as a
    toy face."""
    import json

    from dclip.data.images import read_image, to_tensor

    commands = readme_commands()
    assert [c[0] for c in commands] == ["toy", "finetune", "edit"], commands
    monkeypatch.chdir(readme_dir)
    for argv in commands[1:]:
        assert main(argv + ["--no-progress"]) == 0, argv
    edit = commands[2]
    faces, edits = readme_dir / edit[edit.index("--images") + 1], readme_dir / edit[edit.index("--out") + 1]
    names = sorted(json.loads((faces / "faces.json").read_text()))
    before = torch.cat([to_tensor(read_image(faces / n)) for n in names])
    after = torch.cat([to_tensor(read_image(edits / n)) for n in names])
    outcome = _judged(before, after)
    assert outcome["lacking"].sum() == 4 and outcome["hit"].sum() >= 3, outcome
    assert outcome["well_formed"].min() == 1, outcome


def test_the_readme_toy_python_example_makes_a_judged_edit(readme_dir, monkeypatch):
    """The README's CPU Python example, run as written on the faces the README's first command wrote: its
    settings are the CLI's ``--model toy`` recipe, and the judge reads glasses on at least 3 of the 4 faces."""
    from dclip.cli.toy import toy_profile
    from dclip.method.finetune import attribute_config
    from dclip.notebook.worlds import profile_recipe

    monkeypatch.chdir(readme_dir)
    namespace: dict = {}
    exec(compile(readme_block(PYTHON_SECTION, "python"), "README.md", "exec"), namespace)  # noqa: S102
    toy = toy_profile()
    assert namespace["config"] == attribute_config("glasses", "paper", **profile_recipe(toy), lambda_id=0.0)
    assert (readme_dir / "glasses_00.png").is_file()
    outcome = _judged(namespace["faces"], namespace["edited"])
    assert outcome["lacking"].sum() == 4 and outcome["hit"].sum() >= 3, outcome
    assert outcome["well_formed"].min() == 1, outcome
