"""docs/leakage.md's generated tables agree with results/study/, and their cells say what they claim."""

import importlib.util

import pytest
from helpers import ROOT

spec = importlib.util.spec_from_file_location("leakage_tables", ROOT / "scripts" / "leakage_tables.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def test_docs_tables_agree_with_results_study():
    if not tables.summaries() or not tables.DIFFERENCES.is_file():
        pytest.skip("results/study/ holds no study tables yet")
    text = tables.DOC.read_text()
    for name, make in tables.GENERATED.items():
        assert tables.doc_table.table_in(text, *tables.MARKERS[name]) == make(), (
            f"docs/leakage.md's {name} table differs from results/study/: run `python scripts/leakage_tables.py --write`"
        )


def test_a_cell_is_mean_std_and_interval_or_the_plain_value_of_one_run():
    row = {"mean": "0.97503", "std": "0.01283", "n": "3", "ci95_low": "0.94317", "ci95_high": "1.0"}
    assert tables.value(row) == "0.9750 ± 0.0128 [0.943, 1.000]"
    assert tables.value({"mean": "0.9834", "std": "", "n": "1"}) == "0.9834"
    assert tables.value({"mean": "nan", "std": "", "n": "0"}) == "—"
    assert tables.value(None) == "—"
    assert tables.signed(-0.02504) == "−0.0250" and tables.signed(0.0) == "+0.0000"


def test_the_protocols_table_reads_both_splits_and_both_metrics(tmp_path, monkeypatch):
    header = "row,model,data,metric,mean,std,n,precision,ci95_low,ci95_high\n"
    base = header + "IvanNet,ivannet,base,test/acc,1.0,0.0,3,bf16-mixed,1.0,1.0\n"
    base += "IvanNet g,ivannet,base_grouped,test/acc,0.98,0.01,2,bf16-mixed,0.9,1.0\n"
    base += "1-NN,nn_thumb16,base,test/acc,0.99,,1,,,\n"
    general = header + "IvanNet,ivannet,base,test_aug/acc,0.19,0.004,3,bf16-mixed,0.18,0.2\n"
    paths = [tmp_path / f"{n}.csv" for n in ("base", "augmented", "generalisation")]
    for path, text in zip(paths, (base, header, general)):
        path.write_text(text)
    monkeypatch.setattr(tables, "TABLE_FILES", paths)
    lines = tables.protocols().splitlines()
    assert lines[2] == ("| IvanNet, base | 1.0000 ± 0.0000 [1.000, 1.000] | 0.1900 ± 0.0040 [0.180, 0.200] "
                        "| 0.9800 ± 0.0100 [0.900, 1.000] | — | 3 / 2 | bf16-mixed |")  # fmt: skip
    assert lines[3] == "| 1-NN on 16x16 thumbnails (reference) | 0.9900 | — | — | — | no seed | — |"
    assert len(lines) == 4  # rows with no figure at all are left out, not shown empty
    # the same figure in two tables must agree
    paths[1].write_text(header + "IvanNet,ivannet,base,test/acc,0.5,0.0,3,bf16-mixed,0.5,0.5\n")
    with pytest.raises(ValueError, match="another table"):
        tables.summaries()
