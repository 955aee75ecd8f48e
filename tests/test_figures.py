"""The notebook runner (python -m dclip figures) and the rules every stored notebook follows."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dclip.dev.figures import CHECK_MARK, main, notebooks, run_notebook, store_outputs, strip_outputs

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ALL = notebooks(NOTEBOOKS)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_six_numbered_notebooks_exist():
    assert [p.stem[:2] for p in ALL] == ["01", "02", "03", "04", "05", "06"]
    assert [p.name for p in notebooks(NOTEBOOKS, ["03"])] == ["03_hyperparameter_ablation.ipynb"]
    with pytest.raises(ValueError, match="matches"):
        notebooks(NOTEBOOKS, ["99"])


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_parameters_cell_comes_first_and_holds_literals_only(path):
    import papermill

    nb = nbformat.read(path, as_version=4)
    first = code_cells(nb)[0]
    assert "parameters" in first.metadata.get("tags", [])
    names = []
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.dump(node)
        ast.literal_eval(node.value)  # raises for anything but a literal
        names.append(node.targets[0].id)
    assert names[0] == "profile" and ast.literal_eval(first.source.split("=")[1].split("#")[0]) == "auto"
    assert list(papermill.inspect_notebook(str(path))) == names  # papermill reads every line
    assert not any("parameters" in c.metadata.get("tags", []) for c in code_cells(nb)[1:])


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_only_checked_cells_carry_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "dclip"
    checked = [c for c in code_cells(nb) if CHECK_MARK in c.source]
    assert checked, "every notebook checks at least one table"
    for cell in code_cells(nb):
        assert cell.execution_count is None  # as the git filter (nbstripout) stores it
        if CHECK_MARK in cell.source:
            assert cell.outputs and cell.metadata.get("keep_output") is True
            assert all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs)
        else:
            assert not cell.outputs and "keep_output" not in cell.metadata
        assert "execution" not in cell.metadata
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata


def _toy_notebook() -> nbformat.NotebookNode:
    params = new_code_cell('profile = "auto"')
    params.metadata["tags"] = ["parameters"]
    loud = new_code_cell("print('not kept')", execution_count=7, outputs=[new_output("stream", text="x\n")])
    loud.metadata["execution"] = {"iopub.status.idle": "now"}
    checked = new_code_cell(f"{CHECK_MARK}\nimport os\nprint(profile, os.environ.get('DCLIP_PROFILE'))")
    nb = new_notebook(cells=[new_markdown_cell("# toy"), params, loud, checked])
    nb.metadata["widgets"] = {"state": {}}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_strip_outputs_keeps_only_checked_cells():
    nb = _toy_notebook()
    nb.cells[3].outputs = [new_output("stream", text="kept\n")]
    nb.cells[3].execution_count = 12
    strip_outputs(nb)
    assert nb.cells[2].outputs == [] and nb.cells[2].execution_count is None
    assert "execution" not in nb.cells[2].metadata and "widgets" not in nb.metadata
    assert nb.cells[3].outputs[0].text == "kept\n" and nb.cells[3].execution_count is None
    assert nb.cells[3].metadata.keep_output is True and "keep_output" not in nb.cells[2].metadata


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_stored_notebooks_are_what_the_git_filter_writes(path):
    """`python -m nbstripout --keep-id` (the clean filter of `make setup`) leaves each stored notebook as it is."""
    cleaned = subprocess.run([sys.executable, "-m", "nbstripout", "--keep-id", "-t", str(path)],
                             capture_output=True, check=True).stdout
    assert cleaned == path.read_bytes()


def test_git_filter_keeps_only_the_checked_outputs(tmp_path):
    """`make git-filter` (run by `make setup`): what `git add` stores of an executed notebook."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    shutil.copy(ROOT / ".gitattributes", repo)
    venv = Path(sys.executable).parent.parent
    subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "-C", str(repo), "git-filter", f"VENV={venv}"],
                   check=True)
    nb = _toy_notebook()
    strip_outputs(nb)  # the stored form: the checked cell is marked keep_output
    nb.cells[2].outputs, nb.cells[2].execution_count = [new_output("stream", text="big image\n")], 5
    nb.cells[3].outputs, nb.cells[3].execution_count = [new_output("stream", text="auto smoke\n")], 6
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, repo / "00_toy.ipynb")  # as JupyterLab saves it after Run All
    subprocess.run([*git, "add", "00_toy.ipynb"], check=True)
    stored = nbformat.reads(subprocess.run([*git, "show", ":00_toy.ipynb"], capture_output=True, check=True,
                                           text=True).stdout, as_version=4)
    assert stored.cells[2].outputs == [] and stored.cells[2].execution_count is None
    assert stored.cells[3].outputs[0].text == "auto smoke\n" and "widgets" not in stored.metadata


def test_store_outputs_runs_at_the_stored_profile(tmp_path, monkeypatch):
    from dclip.dev.figures import CHECKED_PROFILE

    monkeypatch.delenv("DCLIP_PROFILE", raising=False)
    path = tmp_path / "00_toy.ipynb"
    nbformat.write(_toy_notebook(), path)
    store_outputs(path, kernel="python3", timeout=60)
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[2].outputs == []
    assert nb.cells[3].outputs[0].text == f"auto {CHECKED_PROFILE}\n"


def test_run_notebook_injects_the_profile(tmp_path):
    path = tmp_path / "00_toy.ipynb"
    nbformat.write(_toy_notebook(), path)
    out = run_notebook(path, "smoke", tmp_path / "executed", kernel="python3", timeout=60)
    executed = nbformat.read(out, as_version=4)
    assert any(c.outputs and c.outputs[0].text.startswith("smoke") for c in executed.cells if c.cell_type == "code")
    assert nbformat.read(path, as_version=4).cells[3].outputs == []  # the source stays as it was


def test_cli_strip_and_unknown_kernel(tmp_path, capsys):
    path = tmp_path / "01_toy.ipynb"
    nbformat.write(_toy_notebook(), path)
    assert main(["--notebooks", str(tmp_path), "--strip"]) == 0
    assert nbformat.read(path, as_version=4).cells[2].outputs == []
    with pytest.raises(SystemExit, match="make setup"):
        main(["--notebooks", str(tmp_path), "--kernel", "no-such-kernel"])
