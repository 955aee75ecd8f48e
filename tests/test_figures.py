"""The notebook runner (python -m dclip figures) and the rules every stored notebook follows."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dclip.dev.figures import CHECK_MARK, main, store_outputs, strip_outputs
from dclip.dev.notebook_runs import notebooks, run_notebook
from dclip.dev.readable import check_readable_size, readable_copy, write_readable

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
    out = run_notebook(path, "smoke", tmp_path / "executed", kernel="python3", timeout=60,
                       readable_dir=tmp_path / "figures" / "notebooks")
    executed = nbformat.read(out, as_version=4)
    assert any(c.outputs and c.outputs[0].text.startswith("smoke") for c in executed.cells if c.cell_type == "code")
    assert nbformat.read(path, as_version=4).cells[3].outputs == []  # the source stays as it was
    readable = nbformat.read(tmp_path / "figures" / "notebooks" / path.name, as_version=4)
    printed = [c.outputs[0].text for c in code_cells(readable) if c.outputs]
    assert printed[0] == "not kept\n" and printed[1].startswith("smoke ") and len(printed) == 2
    assert "papermill" not in readable.metadata  # the run's records go; the outputs stay


def test_the_executed_copies_for_readers_are_exempt_from_the_git_filter(tmp_path):
    """.gitattributes: figures/<subdir>/notebooks/*.ipynb are stored with their outputs; notebooks/ are stripped."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitattributes", tmp_path)
    paths = ["figures/toy/notebooks/01_inversion_quality.ipynb", "figures/notebooks/02_styleclip_comparison.ipynb",
             "notebooks/01_inversion_quality.ipynb"]
    found = subprocess.run(["git", "-C", str(tmp_path), "check-attr", "filter", "diff", "--", *paths],
                           capture_output=True, check=True, text=True).stdout.splitlines()
    assert found == [f"{paths[0]}: filter: unspecified", f"{paths[0]}: diff: unspecified",
                     f"{paths[1]}: filter: unspecified", f"{paths[1]}: diff: unspecified",
                     f"{paths[2]}: filter: nbstripout", f"{paths[2]}: diff: ipynb"]


def test_cli_strip_and_unknown_kernel(tmp_path, capsys):
    path = tmp_path / "01_toy.ipynb"
    nbformat.write(_toy_notebook(), path)
    assert main(["--notebooks", str(tmp_path), "--strip"]) == 0
    assert nbformat.read(path, as_version=4).cells[2].outputs == []
    with pytest.raises(SystemExit, match="make setup"):
        main(["--notebooks", str(tmp_path), "--kernel", "no-such-kernel"])


def _executed_notebook() -> nbformat.NotebookNode:
    """A notebook as papermill leaves it: widget state, run records, a progress bar, a long print, a figure."""
    import base64
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(png, format="PNG")
    figure = new_output("display_data", data={"image/png": base64.b64encode(png.getvalue()).decode(),
                                              "text/plain": "<Figure size 640x480 with 1 Axes>"})
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0}}
    bar = "".join(f"\r{i:3d}%|{'#' * (i // 10)}|" for i in range(0, 101, 5)) + "\n"
    cells = [
        new_code_cell("train()", execution_count=1, outputs=[
            new_output("stream", name="stderr", text=bar[: len(bar) // 2]),
            new_output("stream", name="stderr", text=bar[len(bar) // 2:]),
            new_output("stream", name="stdout", text="".join(f"step {i}: loss 0.{i:04d}\n" for i in range(5000)))]),
        new_code_cell("plot()", execution_count=2, outputs=[
            figure, new_output("display_data", data={**view, "text/plain": "Button()"}),
            new_output("display_data", data=view)]),
        new_code_cell(f"{CHECK_MARK}\nprint(verdicts)", execution_count=3,
                      outputs=[new_output("stream", name="stdout", text="Table 1  reproduces\n")]),
    ]
    for cell in cells:
        cell.metadata["papermill"] = {"duration": 1.0}
        cell.metadata["execution"] = {"iopub.status.idle": "now"}
    nb = new_notebook(cells=[new_markdown_cell("# 01"), *cells])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {"x": "y" * 200_000}}}}
    nb.metadata["papermill"] = {"parameters": {"profile": "toy"}}
    return nb


def test_readable_copy_keeps_figures_and_verdicts_and_drops_the_bulk(tmp_path, capsys):
    """The executed copies `make figures` writes to figures/<subdir>/notebooks: small, with what a reader needs."""
    nb = _executed_notebook()
    before = len(nbformat.writes(nb))
    readable_copy(nb)
    train, plot, verdict = code_cells(nb)
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in code_cells(nb))
    bar, printed = train.outputs
    assert bar.name == "stderr" and bar.text == "100%|##########|\n"  # the progress bar at its last state
    assert printed.text.startswith("step 0: loss") and printed.text.rstrip().endswith("step 4999: loss 0.4999")
    assert "characters cut here" in printed.text and len(printed.text) < 4200
    assert [list(o.data) for o in plot.outputs] == [["image/png", "text/plain"], ["text/plain"]]  # no widget views
    assert verdict.outputs[0].text == "Table 1  reproduces\n" and verdict.execution_count == 3
    after = len(nbformat.writes(nb))
    assert after < before / 20 and after < 10_000
    nbformat.validate(nb)

    executed = tmp_path / "executed" / "01_toy.ipynb"
    executed.parent.mkdir()
    nbformat.write(_executed_notebook(), executed)
    folder = tmp_path / "figures" / "toy" / "notebooks"
    written = write_readable(executed, folder)
    assert written == folder / "01_toy.ipynb" and nbformat.read(written, as_version=4).cells[2].outputs[0].data
    assert check_readable_size(folder) == written.stat().st_size and capsys.readouterr().err == ""
    assert check_readable_size(folder, budget=1000) == written.stat().st_size
    warning = capsys.readouterr().err
    assert warning.startswith("warning:") and "01_toy.ipynb" in warning and warning.count("\n") == 1


def _committed_figure_folders() -> list[Path]:
    """The figures/<subdir>/ folders the repository holds (git's list; a plain copy: those with figures in them)."""
    found = subprocess.run(["git", "ls-files", "figures"], cwd=ROOT, capture_output=True, text=True)
    names = found.stdout.split() if found.returncode == 0 else [str(p.relative_to(ROOT)) for p in
                                                                 (ROOT / "figures").rglob("*.png")]
    return sorted({ROOT / "figures" / Path(n).parts[1] for n in names if len(Path(n).parts) > 2})


@pytest.mark.parametrize("folder", _committed_figure_folders(), ids=lambda p: p.name)
def test_committed_figures_were_made_from_todays_notebooks_data_and_models(folder):
    """Each committed figures folder has a manifest, and no entry of it names a notebook, a data file or a model
    file whose content changed since (dclip's own modules are left to `python -m dclip figures --status`, and so
    is a notebook without an entry: figures made before the manifest existed, or whose last run failed)."""
    from dclip.dev import manifest

    entries = manifest.read_manifest(folder)
    assert entries, f"{folder} has no {manifest.MANIFEST}: run `make figures` and commit what it writes"
    assert set(entries) <= {p.stem for p in ALL}, f"{folder / manifest.MANIFEST} names notebooks that are gone"
    for path in [p for p in ALL if p.stem in entries]:
        stale = manifest.stale_inputs(entries[path.stem], nbformat.read(path, as_version=4), ROOT)
        profile = entries[path.stem].get("profile", folder.name)
        assert stale == [], (f"{folder.name}/{path.stem}'s figures were made from other versions of {stale}: "
                             f"re-run `make figures PROFILE={profile} ONLY={path.stem[:2]}` and commit what it writes")
        missing = [n for n in entries[path.stem]["outputs"] if not (folder / n).is_file()]
        assert missing == [], f"{folder.name}/{path.stem}: its manifest names files that are not there: {missing}"
