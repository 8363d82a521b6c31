"""The label space across sources (tac_ecg_hf.data.labels + label_map.csv): the table, its rules, and its use on the
real data."""

from __future__ import annotations

import ast
from collections import Counter

import pandas as pd
import pytest

from tac_ecg_hf.data import CPSC2018, LUDB, PTBXL, CinC2017, PhysioNet2020, describe_codes, label_table, map_labels
from tac_ecg_hf.data.databases import combine_labels
from tac_ecg_hf.data.labels import VOCABULARIES, normalize_code
from tac_ecg_hf.tasks import TASKS


def test_table_covers_every_vocabulary_and_every_class():
    rows = label_table()
    assert {row.vocabulary for row in rows} == set(VOCABULARIES)
    keys = [(row.vocabulary, normalize_code(row.code)) for row in rows]
    assert len(keys) == len(set(keys))
    assert all(row.description for row in rows)
    for task, spec in TASKS.items():
        reachable = {row.classes[task] for row in label_table(task=task)}
        assert reachable == set(spec.labels), task
        # each class from at least two vocabularies, except CinC 2017's noise class and the PTB-XL superclasses
        for label in spec.labels:
            sources = {row.vocabulary for row in label_table(task=task) if row.classes[task] == label}
            assert len(sources) >= (1 if label == "~" or task == "ptbxl-super" else 2), (task, label, sources)
    with pytest.raises(ValueError, match="Unknown label vocabulary 'icd10'"):
        label_table("icd10")
    with pytest.raises(KeyError, match="Unknown task"):
        map_labels("snomed", ["164889003"], "mitbih")


def test_multi_label_rules():
    assert map_labels("snomed", ["59118001", "164889003", "251146004"], "cpsc2018") == ("AF", "RBBB")  # task order
    assert map_labels("snomed", ["251146004"], "cpsc2018") is None  # low QRS voltage: no CPSC2018 class -> no label
    assert map_labels("snomed", [], "cpsc2018") is None
    # 'sinus rhythm' is CPSC2018's Normal only on its own: beside other findings it says nothing about Normal
    assert map_labels("snomed", ["426783006"], "cpsc2018") == ("Normal",)
    assert map_labels("snomed", ["426783006", "426783006"], "cpsc2018") == ("Normal",)
    assert map_labels("snomed", ["164865005", "426783006"], "cpsc2018") is None
    assert map_labels("snomed", ["59118001", "426783006"], "cpsc2018") == ("RBBB",)
    assert map_labels("ptbxl_scp", ["NORM", "SR"], "cpsc2018") == ("Normal",)
    assert map_labels("ptbxl_scp", ["IMI", "SR"], "cpsc2018") is None
    assert map_labels("ptbxl_scp", ["CLBBB", "IMI", "LVH"], "ptbxl-super") == ("MI", "CD", "HYP")


def test_single_label_rules():
    assert map_labels("ptbxl_scp", ["NORM", "SR"], "chapman") == ("SR",)
    assert map_labels("ptbxl_scp", ["AFIB", "AFLT"], "chapman") == ("AFIB",)  # both AFIB: no conflict
    assert map_labels("ptbxl_scp", ["SR", "STACH"], "chapman") is None  # two groups: a conflict
    assert map_labels("chapman_rhythm", ["AF"], "chapman") == ("AFIB",)  # Chapman's AF is atrial flutter
    assert map_labels("chapman_rhythm", ["AF"], "cinc2017") == ("O",)
    # cinc2017: A > O > N
    assert map_labels("ptbxl_scp", ["SR", "PVC"], "cinc2017") == ("O",)
    assert map_labels("ptbxl_scp", ["AFIB", "PVC"], "cinc2017") == ("A",)
    assert map_labels("ptbxl_scp", ["SR", "LVH"], "cinc2017") == ("N",)
    assert map_labels("ptbxl_scp", ["SBRAD"], "cinc2017") is None
    assert map_labels("cinc2017", ["~"], "cinc2017") == ("~",) and map_labels("cinc2017", ["~"], "chapman") is None


def test_code_matching():
    assert map_labels("cpsc2018", ["  i-avb "], "cpsc2018") == ("I-AVB",)
    assert map_labels("chapman_rhythm", ["afib"], "chapman") == ("AFIB",)
    assert map_labels("ludb_text", ["Rhythm:  Sinus bradycardia."], "chapman") == ("SB",)
    # LUDB statements match a row by their head before ':' or ','
    assert map_labels("ludb_text", ["Rhythm: Atrial flutter, typical."], "chapman") == ("AFIB",)
    statement = "Ventricular extrasystole, localisation: RVOT, anterior wall."
    assert map_labels("ludb_text", [statement], "cpsc2018") == ("PVC",)
    assert map_labels("ludb_text", ["Atrial extrasystole: SA-nodal extrasystole."], "cinc2017") == ("O",)
    assert map_labels("ludb_text", ["Rhythm: Sinus"], "chapman") is None  # a head of a row is no match
    assert describe_codes("snomed", ["164889003", "999", "164889003"]) == ("atrial fibrillation",)
    assert describe_codes("cinc2017", ["O"]) == ("other rhythm",)


def test_ptbxl_rows_follow_scp_statements(ptbxl_dir):
    statements = pd.read_csv(ptbxl_dir / "scp_statements.csv", index_col=0)
    rows = {row.code: row for row in label_table("ptbxl_scp")}
    assert set(rows) == set(statements.index)
    for code, st in statements.iterrows():
        assert rows[code].description == st["description"]
        expected = st["diagnostic_class"] if st["diagnostic"] == 1 else None
        assert rows[code].classes.get("ptbxl-super") == expected, code


def test_ptbxl_superclasses_match_the_reference_rule(ptbxl_dir):
    """Every diagnostic code contributes its diagnostic_class, whatever its likelihood (PTB-XL's example code)."""
    statements = pd.read_csv(ptbxl_dir / "scp_statements.csv", index_col=0)
    classes = statements.loc[statements["diagnostic"] == 1, "diagnostic_class"].to_dict()
    database = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id")
    for value in database["scp_codes"]:
        codes = ast.literal_eval(value)
        expected = {classes[c] for c in codes if c in classes}
        assert set(map_labels("ptbxl_scp", codes, "ptbxl-super") or ()) == expected


def test_real_sources_reach_every_class(data_root, ptbxl_dir, cpsc2018_dir, cinc2017_dir):
    """On the real data, every class of every task is given by at least one source, and each source's own task
    gets back its own labels."""
    if not (data_root / "ludb" / "ludb.csv").is_file() or not (data_root / "cinc2020" / "HR00009.hea").is_file():
        pytest.skip("ludb/ or cinc2020/ not in the real data")
    dbs = [
        PTBXL(ptbxl_dir),
        CPSC2018(cpsc2018_dir),
        CinC2017(cinc2017_dir),
        LUDB(data_root / "ludb"),
        PhysioNet2020(data_root / "cinc2020", ptbxl_root=ptbxl_dir),
    ]
    found = {task: Counter() for task in TASKS}
    for db in dbs:
        for rid in db.record_ids():
            codes = db.label_codes(rid)  # from the index files / headers, without reading the signal
            for task in TASKS:
                found[task].update(combine_labels(codes, task) or ())
    for task, spec in TASKS.items():
        assert set(found[task]) == set(spec.labels), (task, found[task])
    cpsc = CPSC2018(cpsc2018_dir)
    order = TASKS["cpsc2018"].labels.index
    for rid in cpsc.record_ids():
        assert cpsc.task_labels(rid, "cpsc2018") == tuple(sorted(cpsc.labels_of(rid), key=order))
    cinc = CinC2017(cinc2017_dir)
    assert all(cinc.task_labels(rid, "cinc2017") == cinc.labels_of(rid) for rid in cinc.record_ids())
