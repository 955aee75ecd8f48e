"""`make figures` (python -m dclip figures) on small throwaway notebooks: every notebook runs whatever the others
do, what is current is skipped, a finished run alone replaces figures, and the manifest says what made them.

The throwaway repository holds a copy of dclip's source (without the shipped models), which the kernels import
through PYTHONPATH, so that a test can change a dclip module without touching the checkout."""
import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dclip.dev import manifest
from dclip.dev.figure_runs import make_figures
from dclip.dev.notebook_runs import notebooks
from dclip.notebook.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
SMOKE = get_profile("smoke", verbose=False)


def notebook(*cells: str) -> nbformat.NotebookNode:
    params = new_code_cell('profile = "auto"')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *(new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


#: 01 writes a table through dclip and reads a data file; 02 fails at its third cell; 03 uses no dclip at all.
WITH_DCLIP = ("from dclip.notebook.outputs import figures_dir, save_table\n"
              "from dclip.notebook.profiles import get_profile\n"
              "folder = figures_dir(get_profile(profile, verbose=False))",
              "rows = [{'value': open('../data.json').read().strip()}]\nsave_table(rows, folder, '01_table')")
FAILING = ("x = 1", "raise ValueError('the second line says what broke\\nthis is its last line')")
WITHOUT_DCLIP = ("import os, pathlib\n"
                 "out = pathlib.Path(os.environ['DCLIP_FIGURES_DIR'], 'smoke')\n"
                 "out.mkdir(parents=True, exist_ok=True)\n"
                 "(out / '03_note.txt').write_text(profile)",)


@pytest.fixture()
def world(tmp_path, monkeypatch):
    """A throwaway repository (dclip's source, three notebooks, a data file) and a figures folder."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "dclip", repo / "dclip", ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    (repo / "notebooks").mkdir()
    for name, cells in {"01_table": WITH_DCLIP, "02_broken": FAILING, "03_plain": WITHOUT_DCLIP}.items():
        nbformat.write(notebook(*cells), repo / "notebooks" / f"{name}.ipynb")
    (repo / "data.json").write_text("41\n")
    monkeypatch.setenv("PYTHONPATH", str(repo))
    monkeypatch.setenv("DCLIP_FIGURES_DIR", str(tmp_path / "figures"))
    return repo, tmp_path / "figures" / "smoke"


def run(repo: Path, folder: Path, force: bool = False):
    outcomes = make_figures(notebooks(repo / "notebooks"), SMOKE, folder=folder, executed_dir=repo / "executed",
                            kernel="python3", timeout=120, force=force, repo=repo, progress=lambda line: None)
    return {o.name: o for o in outcomes}


def test_a_failing_notebook_leaves_the_others_run_and_current_ones_are_skipped(world):
    repo, folder = world
    first = run(repo, folder)
    assert first["01_table"].status == "ran" and first["03_plain"].status == "ran"
    assert first["02_broken"].status == "failed at cell 2: ValueError: this is its last line"
    assert sorted(first["01_table"].written) == ["01_table.csv", "01_table.json", "notebooks/01_table.ipynb"]
    assert (folder / "03_note.txt").read_text() == "smoke"
    executed = nbformat.read(first["02_broken"].executed, as_version=4)  # kept, with the error where it happened
    assert any(o.get("ename") == "ValueError" for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert not any("dclip-figures-recorder" in c.metadata.get("tags", []) for c in executed.cells)
    assert "02_broken" not in manifest.read_manifest(folder)  # no entry, no figures: the next run tries again

    start = time.perf_counter()
    again = run(repo, folder)
    assert time.perf_counter() - start < 20  # no kernel starts for the two current ones
    assert [again[n].status for n in ("01_table", "03_plain")] == ["skipped: current"] * 2
    assert again["02_broken"].failed

    nb = nbformat.read(repo / "notebooks" / "03_plain.ipynb", as_version=4)
    nb.cells.append(new_code_cell("print('one more cell')"))
    nbformat.write(nb, repo / "notebooks" / "03_plain.ipynb")
    touched = run(repo, folder)
    assert (touched["01_table"].status, touched["03_plain"].status) == ("skipped: current", "ran")

    outputs = repo / "dclip" / "notebook" / "outputs.py"
    outputs.write_text(outputs.read_text() + "\n# touched\n")
    module = run(repo, folder)
    assert (module["01_table"].status, module["03_plain"].status) == ("ran", "skipped: current")

    (repo / "data.json").write_text("42\n")
    data = run(repo, folder)
    assert data["01_table"].status == "ran" and "42" in (folder / "01_table.csv").read_text()
    assert run(repo, folder, force=True)["03_plain"].status == "ran"


def test_the_manifest_says_what_made_each_figure(world):
    repo, folder = world
    run(repo, folder)
    entry = manifest.read_manifest(folder)["01_table"]
    assert set(entry) >= {"key", "inputs", "commit", "dirty", "profile", "device", "torch", "started", "duration_s",
                          "outputs"}
    assert entry["profile"] == "smoke" and entry["duration_s"] > 0 and entry["device"].startswith(("CPU", "GPU"))
    inputs = entry["inputs"]
    assert inputs["parameters"] == {"profile": "smoke"}
    assert inputs["data"] == {"data.json": hashlib.sha256(b"41\n").hexdigest()}
    assert "dclip/notebook/outputs.py" in inputs["sources"] and "dclip/notebook/profiles.py" in inputs["sources"]
    assert not any(name.startswith(("dclip/editor/", "dclip/baselines/")) for name in inputs["sources"])
    assert manifest.read_manifest(folder)["03_plain"]["inputs"]["sources"] == {}  # it imports no dclip module

    nb = nbformat.read(repo / "notebooks" / "01_table.ipynb", as_version=4)
    assert manifest.stale_inputs(entry, nb, repo) == []
    (repo / "data.json").write_text("changed\n")
    assert manifest.stale_inputs(entry, nb, repo) == ["data.json"]


def test_a_cell_that_times_out_is_named_and_its_copy_kept(world):
    repo, folder = world
    nbformat.write(notebook("x = 1", "import time\ntime.sleep(60)"), repo / "notebooks" / "05_hangs.ipynb")
    outcomes = make_figures(notebooks(repo / "notebooks", ["05"]), SMOKE, folder=folder,
                            executed_dir=repo / "executed", kernel="python3", timeout=3, repo=repo,
                            progress=lambda line: None)
    assert outcomes[0].status.startswith("failed at cell 2: CellTimeoutError"), outcomes[0].status
    executed = nbformat.read(outcomes[0].executed, as_version=4)  # saved up to the cell that hung
    assert [c.source for c in executed.cells if c.cell_type == "code"][-2:] == ["x = 1", "import time\ntime.sleep(60)"]
    assert not (folder / manifest.MANIFEST).exists()


def test_a_model_file_read_through_dclip_is_an_input(world):
    """safetensors opens files outside Python: dclip's reader raises an audit event the recorder hears."""
    repo, folder = world
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(repo / "weights.safetensors"))
    nbformat.write(notebook("from dclip.models.folder import read_tensors\nread_tensors('../weights.safetensors')"),
                   repo / "notebooks" / "04_model.ipynb")
    assert run(repo, folder)["04_model"].status == "ran"
    models = manifest.read_manifest(folder)["04_model"]["inputs"]["models"]
    assert list(models) == ["weights.safetensors"]


def test_ctrl_c_leaves_the_figures_as_they_were(world, tmp_path):
    repo, folder = world
    folder.mkdir(parents=True)
    (folder / "05_slow.csv").write_text("the previous run's table\n")
    nbformat.write(notebook(*WITH_DCLIP[:1], "save_table([{'a': 1}], folder, '05_slow')\nimport time\ntime.sleep(600)"),
                   repo / "notebooks" / "05_slow.ipynb")
    started = subprocess.Popen([sys.executable, "-m", "dclip", "figures", "--profile", "smoke", "--kernel", "python3",
                                "--notebooks", str(repo / "notebooks"), "--only", "05"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    staging = repo / ".cache" / "figures-staging" / "05_slow"  # the copy's checkout is the repository it runs in
    deadline = time.monotonic() + 120
    while not list(staging.rglob("05_slow.csv")):  # the notebook has written its new table, aside
        if started.poll() is not None or time.monotonic() > deadline:
            started.kill()
            pytest.fail(f"the notebook never wrote its table aside: {started.communicate()}")
        time.sleep(0.2)
    started.send_signal(signal.SIGINT)
    out, err = started.communicate(timeout=120)
    assert started.returncode == 130, err
    assert err.strip() == ("dclip figures: interrupted in 05_slow; its figures and those after it are as they were "
                           "(done before it: none)")
    assert (folder / "05_slow.csv").read_text() == "the previous run's table\n"
    assert sorted(p.name for p in folder.iterdir()) == ["05_slow.csv"] and not staging.exists()  # no manifest
