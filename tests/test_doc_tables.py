"""The docs' generated tables (dclip.dev.doc_tables): written from the figures' CSVs between markers, and the
committed docs agree with the committed CSVs."""
from pathlib import Path

import pytest

from dclip.dev.doc_tables import DOC_TABLES, DocTable, stale_doc_tables, write_doc_tables

ROOT = Path(__file__).resolve().parents[1]
TABLE = DocTable("docs/page.md", "numbers", "figures/toy/numbers.csv",
                 (("edit", "edit"), ("loss", "loss [loss_ci]"), ("met", "met")))


def _world(tmp_path, csv_text: str) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "figures" / "toy").mkdir(parents=True)
    (tmp_path / "figures" / "toy" / "numbers.csv").write_text(csv_text)
    (tmp_path / "docs" / "page.md").write_text("intro\n\n<!-- numbers -->\nold text\n<!-- /numbers -->\n\nafter\n")
    return tmp_path


def test_a_table_is_written_between_its_markers_and_rewritten_only_when_its_csv_changes(tmp_path):
    root = _world(tmp_path, 'edit,loss,loss_ci,met\nangry,0.3141,"[0.2, 0.456]",False\nglasses,0.1,"[0.05, 0.15]",True\n')
    assert write_doc_tables(root, (TABLE,)) == ["docs/page.md"]
    text = (root / "docs" / "page.md").read_text()
    assert text.startswith("intro\n\n<!-- numbers -->\n| edit | loss | met |\n| --- | --- | --- |\n")
    assert "| angry | 0.31 [0.20, 0.46] | False |\n| glasses | 0.10 [0.05, 0.15] | True |" in text
    assert "old text" not in text and text.endswith("<!-- /numbers -->\n\nafter\n")
    assert write_doc_tables(root, (TABLE,)) == [] and stale_doc_tables(root, (TABLE,)) == []
    (root / "figures" / "toy" / "numbers.csv").write_text('edit,loss,loss_ci,met\nangry,0.5,"[0.4, 0.6]",False\n')
    assert stale_doc_tables(root, (TABLE,)) == ["docs/page.md (numbers)"]
    assert write_doc_tables(root, (TABLE,)) == ["docs/page.md"]
    assert "| angry | 0.50 [0.40, 0.60] | False |\n\n*Written by" in (root / "docs" / "page.md").read_text()


def test_a_doc_without_the_markers_is_named_with_the_fix(tmp_path):
    root = _world(tmp_path, "edit,loss,loss_ci,met\n")
    (root / "docs" / "page.md").write_text("no markers here\n")
    with pytest.raises(ValueError, match=r"docs/page.md has no '<!-- numbers -->'.*add the two lines"):
        write_doc_tables(root, (TABLE,))


def test_a_missing_csv_leaves_the_doc_alone(tmp_path):
    root = _world(tmp_path, "")
    (root / "figures" / "toy" / "numbers.csv").unlink()
    assert write_doc_tables(root, (TABLE,)) == []
    assert "old text" in (root / "docs" / "page.md").read_text()


def test_the_committed_docs_show_what_the_committed_csvs_say():
    assert stale_doc_tables(ROOT, DOC_TABLES) == [], "run `python -m dclip figures` (or make figures) to rewrite them"
