"""python -m dclip: a fine-tune and an edit end to end on the tiny models, and one-line errors."""
import pytest

from dclip.cli import main
from dclip.engine.images import sample_photos, save_image


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
    from dclip.cli import _finetune_config, build_parser

    def cfg(*extra):
        return _finetune_config(build_parser().parse_args(["finetune", "--attribute", "makeup", "--out", "x", *extra]))

    assert cfg().lambda_id == 0.1 and cfg().t0 == 301  # the paper: λ_ID 0.1 for in-domain face edits
    readme = cfg("--recipe", "authors_readme")
    assert (readme.lambda_id, readme.lr, readme.lambda_clip) == (0.0, 8e-6, 3.0)  # the authors' command
    assert cfg("--lambda-id", "0.5").lambda_id == 0.5


def test_cli_honours_the_attributes_l1_flag(monkeypatch):
    """The attribute decides λ_L1 through dclip.engine.finetune.attribute_config, as in the notebooks."""
    from dclip.cli import _finetune_config, build_parser
    from dclip.engine import attributes

    monkeypatch.setitem(attributes.ATTRIBUTES, "no_l1", attributes.Attribute("face", "stone face", 401, use_l1=False))

    def cfg(*extra):
        return _finetune_config(build_parser().parse_args(["finetune", "--attribute", "no_l1", "--out", "x", *extra]))

    assert (cfg().lambda_l1, cfg().lambda_id, cfg().t0) == (0.0, 0.0, 401)
    assert cfg("--recipe", "authors_readme").lambda_l1 == 0.0
    assert cfg("--lambda-l1", "0.2").lambda_l1 == 0.2  # an explicit flag still wins


def test_edit_defaults_to_the_trained_t0(tmp_path):
    import json

    from dclip.cli import _trained_t0

    (tmp_path / "m.json").write_text(json.dumps({"hyperparameters": {"t0": 601}}))
    assert _trained_t0(str(tmp_path / "m.safetensors")) == 601
    assert _trained_t0(str(tmp_path / "other.safetensors")) == 400
