"""The docs' generated tables (dclip.dev.doc_tables): written from the figures' CSVs between markers, and the
committed docs agree with the committed CSVs."""
import json
from pathlib import Path

import pytest

from dclip.dev.doc_blocks import DOC_BLOCKS
from dclip.dev.doc_tables import DocBlock, DocTable, stale_doc_tables, write_doc_tables

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
    """The docs' tables, the README's verdicts, edit and GAN tables, its numbers about the GAN side and the figure
    time: as the committed figures/toy/ files say."""
    assert stale_doc_tables(ROOT, DOC_BLOCKS) == [], "run `python -m dclip figures` (or make figures) to rewrite them"


def _csv(path: Path, header: str, *rows: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")


def test_the_readme_blocks_say_what_their_files_say(tmp_path):
    from dclip.dev import doc_blocks

    toy = tmp_path / "figures" / "toy"
    _csv(toy / "02_judged_edits.csv", "edit,model,t0,hit,hit_ci,kept,kept_ci,formed,toy_id,judge_to_true,"
         "judge_to_true_ci,original_judge_to_true,of,runs,targets met",
         'glasses,fine-tuned,301,0.9688,"[0.9, 1.0]",0.95,"[0.87, 1.0]",0.97,0.65,0.09,"[0.06, 0.11]",0.17,32,3,True',
         'glasses,untouched (control),301,0.0,"[0.0, 0.0]",1.0,"[1.0, 1.0]",1.0,0.97,0.18,"[0.1, 0.2]",0.17,32,,')
    table = doc_blocks.edit_table(tmp_path)
    assert '| ["person" → "person with glasses"](figures/toy/02_edit_glasses.png) | 301 | 0.97 [0.90, 1.00] | ' \
           '0.95 [0.87, 1.00] | 0.97 | 0.09 [0.06, 0.11] (0.17) | 0.65 | meets the targets |' in table
    assert "untouched" not in table and "3 fine-tunes per edit, 32 test faces each" in table
    methods = "edit,kind,method,inversion,hit,hit_ci,kept,of,runs"
    _csv(toy / "02_compare_methods.csv", methods,
         'angry,in domain,StyleCLIP,e4e,0.0625,"[0.0, 0.19]",0.25,16,',
         'angry,in domain,StyleCLIP (global directions),e4e,0.0,"[0.0, 0.0]",0.0,16,',
         'angry,in domain,DiffusionCLIP,DDIM,0.5833,"[0.25, 0.9]",1.0,16,3',
         'sketch,out of domain,StyleCLIP (global directions),e4e,0.0,"[0.0, 0.0]",0.125,16,',
         'sketch,out of domain,DiffusionCLIP,DDIM,0.0,"[0.0, 0.0]",0.77,16,3')
    _csv(toy / "02_gan_inversion.csv", "inversion,attributes_kept", "e4e (toy StyleGAN2),0.875", "DDIM (toy DDPM),1.0")
    assert "| angry (in domain) | 0.06 (1/16) | 0.00 (0/16) | – | – | 0.58 [0.25, 0.90] |" in doc_blocks.gan_table(tmp_path)
    sentence = doc_blocks.gan_sentence(tmp_path)
    assert sentence.startswith("the best hit of any GAN method on any edit is 0.062 (1/16 faces: StyleCLIP from e4e")
    assert "kept is at most 0.25 in domain" in sentence and "keep 0.00–0.12 of the attributes" in sentence
    assert sentence.endswith("keep 0.88 (e4e (toy StyleGAN2))")
    assert doc_blocks.verdict_table(tmp_path) is None  # a notebook's claims missing: the table is left as it is
    for name in doc_blocks.CLAIM_NOTEBOOKS:
        _csv(toy / f"{name[:2]}_claims.csv", "claim,measured,verdict,held,cases", f"{name[:2]} holds,numbers,partly,1,2")
    assert doc_blocks.paper_verdict_table(tmp_path).startswith("*No paper-profile run is committed yet")
    verdicts = doc_blocks.verdict_table(tmp_path)
    assert "| 03 holds | numbers | **partly** (1/2) | [03](notebooks/03_hyperparameter_ablation.ipynb) ([executed]" \
           "(figures/toy/notebooks/03_hyperparameter_ablation.ipynb)) |" in verdicts
    _csv(toy / "05_claims.csv", "claim,measured,verdict,held,cases", "03 holds,numbers,partly,1,2")  # 03's again
    twice = doc_blocks.verdict_table(tmp_path)
    assert twice.count("| 03 holds |") == 1 and "(figures/toy/notebooks/03_hyperparameter_ablation.ipynb)), [05](" in twice
    (toy / "manifest.json").write_text(json.dumps({"notebooks": {
        "02_b": {"device": "CPU: X (2 cores)", "started": "2026-12-08T01:00:00", "duration_s": 1500.4},
        "01_a": {"device": "CPU: X (2 cores)", "started": "2026-12-07T23:00:00", "duration_s": 300.0}}}))
    assert doc_blocks.figures_time(tmp_path) == ("at the toy profile on CPU: X (2 cores), measured 2026-12-07 to "
                                                 "2026-12-08: 01 300 s, 02 1500 s; 30 min in all")


def test_an_inline_block_stays_inside_its_sentence(tmp_path):
    (tmp_path / "doc.md").write_text("It took <!-- t -->old<!-- /t --> in all.\n")
    block = DocBlock("doc.md", "t", lambda root: "3 min")
    assert write_doc_tables(tmp_path, (block,)) == ["doc.md"]
    assert (tmp_path / "doc.md").read_text() == "It took <!-- t -->3 min<!-- /t --> in all.\n"


def test_the_executed_notebooks_print_the_verdicts_their_claims_csvs_hold():
    """Each executed toy notebook's claims cell printed exactly the claims its NN_claims.csv (and so the README) holds."""
    import nbformat

    from dclip.dev.doc_blocks import CLAIM_NOTEBOOKS, TOY
    from dclip.dev.doc_tables import read_rows

    for name in CLAIM_NOTEBOOKS:
        rows = read_rows(ROOT / TOY / f"{name[:2]}_claims.csv")
        assert rows, f"{TOY}/{name[:2]}_claims.csv is missing: run `make figures PROFILE=toy ONLY={name[:2]}`"
        executed = nbformat.read(ROOT / TOY / "notebooks" / f"{name}.ipynb", as_version=4)
        cell = next(c for c in executed.cells if c.cell_type == "code" and "claims.report" in c.source)
        printed = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        for r in rows:
            block = f"paper: {r['claim']}\n  here: {r['measured']}\n  -> {r['verdict']}"
            assert block in printed, f"{name}: the printed verdict differs from {name[:2]}_claims.csv for {r['claim']!r}"
