"""The CPU-portability report: which checked numbers move between simulated CPUs."""
import re
from pathlib import Path

from dclip.dev.figures import CHECKED_PROFILE
from dclip.notebook.outputs import format_table
from dclip.dev.portability import SIMULATED_CPUS, compare_texts

ROOT = Path(__file__).resolve().parent.parent


def _table(mae_400: float, s_dir: float) -> str:
    rows = [{"method": "DDIM (paper)", "t0": 300, "mae": 0.024, "s_dir": 0.5},
            {"method": "DDIM (paper)", "t0": 400, "mae": mae_400, "s_dir": s_dir}]
    return format_table(rows)


def test_identical_texts_report_nothing():
    spread = compare_texts([_table(0.071, 0.3)] * 3)
    assert spread.identical and spread.moved == [] and spread.other == [] and spread.max_change() == 0.0


def test_a_moved_number_is_named_by_row_and_column():
    spread = compare_texts([_table(0.071, 0.3), _table(0.071, 0.25), _table(0.072, 0.3)])
    assert not spread.identical
    assert spread.moved == [("DDIM (paper)", "mae", ["0.071", "0.071", "0.072"]),
                            ("DDIM (paper)", "s_dir", ["0.300", "0.250", "0.300"])]
    assert abs(spread.max_change() - 0.05) < 1e-12


def test_text_that_is_not_number_for_number_is_reported_whole():
    spread = compare_texts(["a 1\nb 2\n", "a 1\nb x y\n"])
    assert spread.moved == [] and spread.other == ["b 2 | b x y"]
    assert compare_texts(["a 1\n", "a 1\nb 2\n"]).other  # a missing line


def test_simulated_cpus_are_the_settings_the_makefile_documents():
    """make test-portable and docs/portability.md name the same switches as SIMULATED_CPUS."""
    assert SIMULATED_CPUS["native"] == {}
    assert SIMULATED_CPUS["avx2"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert SIMULATED_CPUS["baseline"]["ATEN_CPU_CAPABILITY"] == "default"
    assert "dclip portability test" in (ROOT / "Makefile").read_text()
    documented = (ROOT / "docs" / "portability.md").read_text()
    for name in ("avx2", "baseline"):
        assert " ".join(f"{k}={v}" for k, v in SIMULATED_CPUS[name].items()) in documented, name


def test_nbval_runs_at_the_profile_the_notebooks_store():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"NBVAL_PROFILE \?= ([\w-]+)", makefile).group(1) == CHECKED_PROFILE
    assert re.search(r"test-notebooks:.*\n.*DCLIP_PROFILE=\$\(NBVAL_PROFILE\)", makefile)


def test_table_spread_is_the_largest_change_per_numeric_column_and_group():
    from dclip.dev.portability import table_spread

    a = [{"m": "x", "mae": 0.1, "s": 1.0, "n": 3}, {"m": "y", "mae": 0.2, "s": None, "n": 3},
         {"m": "x", "mae": 0.3, "s": 0.0, "n": 3}]
    b = [{"m": "x", "mae": 0.1004, "s": 0.5, "n": 3}, {"m": "y", "mae": 0.199, "s": None, "n": 3},
         {"m": "x", "mae": 0.3, "s": 0.1, "n": 3}]
    spread = table_spread([a, b])
    assert set(spread) == {"mae", "s", "n"} and spread["n"] == {"x": 0.0, "y": 0.0}
    assert abs(spread["mae"]["x"] - 0.0004) < 1e-12 and abs(spread["mae"]["y"] - 0.001) < 1e-12
    assert spread["s"] == {"x": 0.5}
    assert table_spread([[{"v": float("nan")}], [{"v": 1.0}]])["v"] == {"": float("inf")}
