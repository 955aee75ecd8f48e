"""Result files and printed tables; labelled image grids with the profile stamp."""
import csv
import json

import torch

from dclip.notebook.outputs import figures_dir, format_table, round_value, rows_without, save_figure, save_table
from dclip.studies.plots import image_grid
from dclip.notebook.profiles import SMOKE_STAMP, get_profile


def test_format_table_rounds_to_three_decimals_and_marks_missing_values():
    rows = [{"name": "a", "x": 0.12349, "y": None}, {"name": "bb", "x": -0.0001, "y": 2}]
    assert format_table(rows).splitlines() == [
        "name      x  y",
        "----  -----  -",
        "   a  0.123  -",
        "  bb  0.000  2",
    ]
    assert format_table([]) == "(no rows)"
    assert round_value(-0.0004) == 0.0 and str(round_value(-0.0004)) == "0.0"


def test_format_table_takes_decimals_per_column():
    rows = [{"t0": 300, "mae": 0.02449, "s_dir": -0.0468}, {"t0": 400, "mae": 0.1, "s_dir": 0.651}]
    assert format_table(rows, digits={"s_dir": 1}).splitlines() == [
        " t0    mae  s_dir",
        "---  -----  -----",
        "300  0.024    0.0",
        "400  0.100    0.7",
    ]
    assert format_table(rows, digits=2).splitlines()[2] == "300  0.02  -0.05"


def test_rows_without_leaves_out_the_named_values():
    rows = [{"method": "A", "x": 1}, {"method": "B", "x": 2}, {"method": "C", "x": 3}, {"x": 4}]
    assert rows_without(rows, "method", ["B", "C"]) == [{"method": "A", "x": 1}, {"x": 4}]


def test_figures_go_under_the_profiles_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv("DCLIP_FIGURES_DIR", raising=False)
    assert figures_dir(get_profile("smoke")).parts[-2:] == ("figures", "smoke")
    assert figures_dir(get_profile("paper")).name == "figures"
    monkeypatch.setenv("DCLIP_FIGURES_DIR", str(tmp_path))
    assert figures_dir(get_profile("smoke")) == tmp_path / "smoke"
    assert figures_dir(get_profile("smoke"), tmp_path / "mine") == tmp_path / "mine" / "smoke"


def test_save_table_writes_csv_and_json(tmp_path):
    rows = [{"t0": 300, "mae": 0.5}, {"t0": 400, "mae": 0.25, "note": "x"}]
    path = save_table(rows, tmp_path, "table", meta={"profile": "smoke"})
    with open(path) as f:
        assert list(csv.DictReader(f)) == [{"t0": "300", "mae": "0.5", "note": ""},
                                           {"t0": "400", "mae": "0.25", "note": "x"}]
    payload = json.loads(path.with_suffix(".json").read_text())
    assert payload == {"meta": {"profile": "smoke"}, "rows": rows}


def test_image_grid_labels_blanks_and_stamp(tmp_path):
    x = torch.zeros(3, 8, 8)
    fig = image_grid([[x, x, None], [x]], row_labels=["r1", "r2"], col_labels=["a", "b", "c"],
                     captions=[[], ["own"]], title="T", stamp_text=SMOKE_STAMP)
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == ["a", "b", "c"]
    assert not axes[2].axison and not axes[5].axison  # blank cells are hidden
    assert axes[3].get_title() == "own" and axes[3].get_ylabel() == "r2"
    assert any(t.get_text() == SMOKE_STAMP for t in fig.texts)
    path = save_figure(fig, tmp_path, "grid")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert fig._repr_png_()[:4] == b"\x89PNG"  # what Jupyter displays


def test_unstamped_grid_has_no_stamp_and_empty_grids_are_refused():
    import pytest

    fig = image_grid([[torch.zeros(1, 3, 4, 4)]])
    assert not fig.texts
    with pytest.raises(ValueError, match="at least one image"):
        image_grid([])


def test_repo_root_is_the_checkout_from_any_working_directory(tmp_path, monkeypatch):
    from pathlib import Path

    from dclip.notebook.outputs import repo_root

    monkeypatch.chdir(tmp_path)
    assert repo_root() == Path(__file__).resolve().parents[1]
