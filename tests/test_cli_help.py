"""The first hour with ``python -m dclip``: help that teaches (examples that parse, numbers for defaults, no torch
imported), and ``toy train`` that never overwrites the shipped models unless told to."""
import hashlib
import json
import os
import shlex
import subprocess
import sys

import pytest

from dclip.models.folder import SHIPPED_DIR, TOY_MODELS_ENV

PREFIX = ["python", "-m", "dclip"]


def _argv(line: str) -> list[str]:
    words = shlex.split(line)
    assert words[:3] == PREFIX, line
    return words[3:]


def test_every_example_in_the_help_parses():
    """Each command's epilog examples are real command lines of that command (the toy tool's through its own parser)."""
    from dclip.cli import EXAMPLES, build_parser, examples
    from dclip.dev import toy_commands

    parser = build_parser()
    for command, lines in EXAMPLES.items():
        assert lines and all(line in examples(command) for line in lines)
        for line in lines:
            argv = _argv(line)
            if argv[0] == "toy":
                toy_commands.build_parser().parse_args(argv[1:])
                continue
            args = parser.parse_args(argv)
            assert command in ("", args.command), line
    for line in toy_commands.EXAMPLES:
        assert _argv(line)[0] == "toy"
        toy_commands.build_parser().parse_args(_argv(line)[1:])
    assert set(EXAMPLES) == {"", "precompute", "finetune", "edit", "cache"}


def test_help_shows_examples_version_and_the_command_hint(capsys):
    from dclip.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "python -m dclip COMMAND --help" in text
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    from dclip import __version__

    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"dclip {__version__}"


def test_finetune_help_gives_the_recipe_defaults_as_numbers(capsys):
    """No "recipe default": the toy profile's and the paper recipe's values, read from their one definition."""
    from dclip.cli import main
    from dclip.method.recipes import RECIPES
    from dclip.notebook.profiles import PROFILES

    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "recipe default" not in text
    toy, paper = PROFILES["toy"], RECIPES["paper"]
    assert f"initial learning rate (default: {toy.lr:g} at --model toy" in text
    assert f"{paper['lr']:g} for the paper recipe" in text and f"{paper['lambda_l1']:g}" in text
    assert "OUT.safetensors with its OUT.json sidecar for one attribute, OUT/ATTRIBUTE.safetensors" in text
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    edit = " ".join(capsys.readouterr().out.split())
    assert "the t0 the first --finetuned model was trained at" in edit and "the attribute's" not in edit


def test_help_imports_no_torch():
    """Building the parsers and printing every help, in a fresh interpreter: torch is never imported."""
    code = """
import contextlib, io, sys
from dclip.cli import build_parser, main
from dclip.dev import toy_commands
for argv in ([], ['precompute'], ['finetune'], ['edit'], ['cache'], ['toy'], ['toy', 'train'], ['toy', 'faces']):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main([*argv, '--help'])
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(['--version'])
print('torch' in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_front_door_still_has_every_name():
    """``dclip``'s names are imported on first use (so ``--help`` stays light) and are the real objects."""
    import dclip
    from dclip.method.ddim import invert
    from dclip.models.unet import load_unet

    assert dclip.invert is invert and dclip.load_unet is load_unet
    assert all(hasattr(dclip, name) for name in dclip.__all__)
    with pytest.raises(AttributeError):
        dclip.not_a_name  # noqa: B018


# -- toy train never overwrites the shipped models ------------------------------------------------------------------

def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_toy_train_writes_to_a_user_folder_and_leaves_the_shipped_models_unchanged(tmp_path, monkeypatch, capsys):
    from dclip.dev import toy_commands
    from dclip.toy import judging, train

    monkeypatch.setenv("DCLIP_CACHE", str(tmp_path / "data"))
    for module, name in ((train, "calibrate_judge"), (train, "judge_accuracy"), (judging, "refusal_report")):
        monkeypatch.setattr(module, name, lambda *a, **k: {})  # the held-out measurements: a minute, not the point
    before = _digests(SHIPPED_DIR)
    assert toy_commands.main(["train", "judge", "--steps", "1", "--no-progress"]) == 0
    assert _digests(SHIPPED_DIR) == before
    written = tmp_path / "data" / "toy-models" / "toy_judge.safetensors"
    assert written.is_file() and json.loads(written.with_suffix(".json").read_text())["steps_done"] == 1
    out = capsys.readouterr().out
    assert str(written) in out and "--toy-models" in out


def test_toy_train_into_the_shipped_folder_needs_force(tmp_path, monkeypatch, capsys):
    from dclip.dev import toy_commands

    before = _digests(SHIPPED_DIR)
    spelled = SHIPPED_DIR / ".." / "shipped"  # however the folder is written
    with pytest.raises(SystemExit) as done:
        toy_commands.main(["train", "judge", "--steps", "1", "--out", str(spelled)])
    assert done.value.code == 2 and "--force" in capsys.readouterr().err
    assert _digests(SHIPPED_DIR) == before


def test_toy_models_folder_is_read_first_and_falls_back_to_the_shipped_models(tmp_path, monkeypatch):
    """``--toy-models DIR`` / $DCLIP_TOY_MODELS: a model DIR holds is read from DIR, one it lacks from the shipped
    folder, and a folder that is not there is an error naming the variable."""
    from dclip.models.folder import shipped_file, toy_models_dir

    (tmp_path / "toy_judge.safetensors").write_bytes((SHIPPED_DIR / "toy_judge.safetensors").read_bytes())
    monkeypatch.setenv(TOY_MODELS_ENV, str(tmp_path))
    assert toy_models_dir() == tmp_path
    assert shipped_file("toy_judge") == tmp_path / "toy_judge.safetensors"
    assert shipped_file("toy_ddpm") == SHIPPED_DIR / "toy_ddpm.safetensors"
    monkeypatch.setenv(TOY_MODELS_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=TOY_MODELS_ENV):
        shipped_file("toy_ddpm")


def test_the_cli_flag_points_the_loaders_at_a_retrained_folder(tmp_path, monkeypatch, capsys):
    """``finetune --toy-models DIR`` with a folder that is not there: one line naming it, exit 2."""
    from dclip.cli import main

    monkeypatch.setenv(TOY_MODELS_ENV, "")  # recorded, so the test's own change is undone too
    monkeypatch.delenv(TOY_MODELS_ENV)
    code = main(["finetune", "--model", "toy", "--attribute", "glasses", "--toy-models", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "x"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "nope") in err and len(err.strip().splitlines()) == 1
    assert TOY_MODELS_ENV not in os.environ  # main() restores the caller's environment
