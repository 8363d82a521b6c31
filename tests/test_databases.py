"""The database readers (tac_ecg_hf.data.databases): the real data where it exists (skipped without it), and
files made in each database's real layout."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from hypothesis import given
from hypothesis import strategies as st
from test_data_readers import FUZZ, make_chapman, write_cinc_mat_record

from tac_ecg_hf.data import (
    CPSC2018,
    DATABASES,
    LUDB,
    MIMICIVECG,
    PTBXL,
    Chapman,
    CinC2017,
    ECGFileError,
    ECGFileNotFoundError,
    ECGInputError,
    ECGQualityWarning,
    PhysioNet2020,
    assign_split,
    get_database,
)
from tac_ecg_hf.tasks import STANDARD_LEADS, TASKS

# the real-data folders (ptbxl_dir, cpsc2018_dir, cinc2017_dir, cinc2020_dir, ludb_dir, chapman_dir): conftest.py


def test_registry():
    assert set(DATABASES) == {"ptbxl", "cpsc2018", "cinc2017", "chapman", "ludb", "physionet2020", "mimic_iv_ecg"}
    assert all(cls.name == name for name, cls in DATABASES.items())
    with pytest.raises(KeyError, match="Known databases: ptbxl"):
        get_database("mitbih", ".")
    with pytest.raises(ECGFileNotFoundError, match="CPSC2018 data directory .* does not exist"):
        get_database("cpsc2018", "/nonexistent/cpsc")


def test_assign_split_is_deterministic_and_proportional():
    ids = [f"A{i:05d}" for i in range(6000)]
    splits = [assign_split(i) for i in ids]
    assert splits == [assign_split(i) for i in ids]
    counts = Counter(splits)
    assert abs(counts["train"] / 6000 - 0.7) < 0.03 and abs(counts["test"] / 6000 - 0.15) < 0.03
    assert [assign_split(i, seed=1) for i in ids] != splits
    assert {assign_split(i, (1.0, 0.0, 0.0)) for i in ids[:100]} == {"train"}
    with pytest.raises(ValueError, match="sum to 1"):
        assign_split("x", (0.5, 0.2, 0.2))


# ================================================================================================================
# PTB-XL
# ================================================================================================================


def test_real_ptbxl_array_file_and_folds(ptbxl_dir):
    db = PTBXL(ptbxl_dir)  # records100/ is absent: the one .npz is used
    ids = db.record_ids()
    npz_ids = np.load(ptbxl_dir / "ptbxl_1519_100hz_f16.npz")["ecg_id"]
    assert ids == [str(i) for i in sorted(npz_ids)] and len(db) == 1519
    record = db.load(ids[0])
    assert record.units == "normalized" and record.meta["bandpassed"] == (0.5, 40.0)
    assert record.sampling_rate == 100 and record.signal.shape == (12, 1000) and record.lead_names == STANDARD_LEADS
    database = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id")
    row = database.loc[int(ids[0])]
    assert record.labels == tuple(eval(row["scp_codes"])) and record.meta["report"] == " ".join(row["report"].split())
    folds = {rid: db.fold_of(rid) for rid in ids}
    assert folds == {rid: int(database.loc[int(rid), "strat_fold"]) for rid in ids}
    expected_split = {**{f: "train" for f in range(1, 9)}, 9: "validation", 10: "test"}
    assert all(db.split_of(rid) == expected_split[fold] for rid, fold in folds.items())
    validation = db.record_ids("validation")
    assert validation == [rid for rid in ids if folds[rid] == 9]
    assert [r.record_id for r in db.records("test", limit=4)] == [rid for rid in ids if folds[rid] == 10][:4]
    with pytest.raises(KeyError, match="no record '1'"):
        db.load("1")  # in the database, not in the array file


def test_real_ptbxl_text(ptbxl_dir):
    db = PTBXL(ptbxl_dir)
    record = db.load(db.record_ids()[0])
    assert db.text(record) == record.meta["report"]
    scp = db.text(record, "scp")
    assert scp.endswith(".") and "sinus rhythm" in scp.lower()
    assert db.text(record, "both") == f"{scp} {record.meta['report']}"
    with pytest.raises(ValueError, match="text_source must be one of"):
        db.text(record, "german")
    validation = list(db.records("validation", limit=3))  # the ECG-text pairs of a split (builders: load_cetp_pairs)
    assert [r.record_id for r in validation] == db.record_ids("validation")[:3]
    assert all(db.text(r, "scp") for r in validation)


def test_ptbxl_wfdb_layout(tmp_path, ptbxl_dir):
    """PTB-XL with WFDB records (records100/00000/00001_lr) written by wfdb in the real layout."""
    import wfdb

    database = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id").loc[[1, 2, 3]]
    database.to_csv(tmp_path / "ptbxl_database.csv")
    shutil.copyfile(ptbxl_dir / "scp_statements.csv", tmp_path / "scp_statements.csv")
    names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]  # PTB-XL header spelling
    signals = {}
    for ecg_id, rel in database["filename_lr"].items():
        folder = tmp_path / Path(rel).parent
        folder.mkdir(parents=True, exist_ok=True)
        signal = np.random.default_rng(ecg_id).standard_normal((1000, 12)) * 0.2
        wfdb.wrsamp(Path(rel).name, fs=100, units=["mV"] * 12, sig_name=names, p_signal=signal, fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
        signals[ecg_id] = signal
    db = PTBXL(tmp_path)
    records = list(db.records())
    assert [r.record_id for r in records] == ["1", "2", "3"]
    assert records[0].lead_names == STANDARD_LEADS and records[0].units == "mV" and "bandpassed" not in records[0].meta
    assert records[0].meta["superclasses"] == ("NORM",) and db.task_labels(records[0], "ptbxl-super") == ("NORM",)
    np.testing.assert_allclose(records[1].signal, signals[2].T, atol=1e-3)
    with pytest.raises(ECGFileNotFoundError, match="records500"):
        PTBXL(tmp_path, sampling_rate=500).record_ids()


def test_ptbxl_errors(tmp_path):
    with pytest.raises(ECGFileNotFoundError, match="ptbxl_database.csv is missing"):
        PTBXL(tmp_path)
    (tmp_path / "ptbxl_database.csv").write_text(
        "ecg_id,patient_id,report,scp_codes,strat_fold,filename_lr,filename_hr\n"
        "1,1.0,x,\"{'NORM': 100.0}\",11,records100/00000/00001_lr,x\n"
        "2,1.0,x,\"{'NORM': 100.0}\",3,../../etc/passwd,x\n"
    )
    statements = ",description,diagnostic,diagnostic_class\nNORM,normal ECG,1.0,NORM\n"
    (tmp_path / "scp_statements.csv").write_text(statements)
    (tmp_path / "records100").mkdir()
    db = PTBXL(tmp_path)
    with pytest.raises(ECGFileError, match="strat_fold is 11; ptbxl_database.csv must give each record an integer"):
        db.record_ids("train")
    with pytest.raises(ECGFileError, match="record 2: filename_lr '../../etc/passwd' .* not a relative path inside"):
        db.load("2")
    with pytest.raises(ValueError, match="sampling_rate must be 100 or 500"):
        PTBXL(tmp_path, sampling_rate=250)


# ================================================================================================================
# CPSC2018
# ================================================================================================================


def test_real_cpsc2018(cpsc2018_dir):
    db = CPSC2018(cpsc2018_dir)
    records = list(db.records())
    assert len(records) == 120 and records[0].record_id == "A0001" and records[0].labels == ("RBBB",)
    dx = {r.record_id: r.meta["header_info"]["Dx"] for r in records}
    assert all(",".join(r.labels) == dx[r.record_id] for r in records)  # the source's own labels
    counts = Counter(label for r in records for label in db.task_labels(r, "cpsc2018"))
    assert set(counts) == set(TASKS["cpsc2018"].labels)
    assert sum(len(db.task_labels(r, "cpsc2018")) == 2 for r in records) == sum("," in d for d in dx.values())
    assert all(r.sampling_rate == 500 and r.num_leads == 12 and r.meta["age"] for r in records)
    train = [r.record_id for r in db.records("train")]
    assert train == [r.record_id for r in records if r.meta["split"] == "train"] == db.record_ids("train")
    assert len(list(db.records(limit=3))) == 3
    assert db.text(records[0]) == "right bundle branch block."


def test_real_cpsc2018_with_snomed_codes(cpsc2018_dir, tmp_path):
    for ext in (".hea", ".mat"):
        shutil.copyfile(cpsc2018_dir / f"A0001{ext}", tmp_path / f"A0001{ext}")
    hea = tmp_path / "A0001.hea"
    hea.write_text(hea.read_text().replace("#Dx: RBBB", "#Dx: 59118001,164889003,251146004"))
    db = CPSC2018(tmp_path)
    (record,) = db.records()
    assert record.labels == ("59118001", "164889003", "251146004")
    assert db.task_labels(record, "cpsc2018") == ("AF", "RBBB") and db.task_labels(record, "chapman") == ("AFIB",)


def test_cpsc2018_original_layout(tmp_path):
    rng = np.random.default_rng(0)
    for rid in ("A0001", "A0002", "A0003"):
        struct = {"sex": "Male", "age": 50, "data": rng.standard_normal((12, 5000))}
        scipy.io.savemat(tmp_path / f"{rid}.mat", {"ECG": struct})
    (tmp_path / "REFERENCE.csv").write_text(
        "Recording,First_label,Second_label,Third_label\nA0001,5,,\nA0002,2,5,\nA0003,1,,\n"
    )
    db = CPSC2018(tmp_path)
    records = {r.record_id: r for r in db.records()}
    assert records["A0001"].labels == ("RBBB",) and records["A0002"].labels == ("AF", "RBBB")
    assert records["A0003"].labels == ("Normal",) and records["A0003"].sampling_rate == 500
    (tmp_path / "REFERENCE.csv").write_text("Recording,First_label\nA0001,12\n")
    with pytest.raises(ECGFileError, match=r"line 2 \(record A0001\): label '12' is not a number in 1..9"):
        CPSC2018(tmp_path).record_ids()


def test_cpsc2018_reference_and_header_disagree(cpsc2018_dir, tmp_path):
    for ext in (".hea", ".mat"):
        shutil.copyfile(cpsc2018_dir / f"A0001{ext}", tmp_path / f"A0001{ext}")  # '#Dx: RBBB'
    (tmp_path / "REFERENCE.csv").write_text("Recording,First_label,Second_label,Third_label\nA0001,5,,\n")
    (record,) = CPSC2018(tmp_path).records()  # 5 = RBBB: both sources agree
    assert record.labels == ("RBBB",)
    (tmp_path / "REFERENCE.csv").write_text("Recording,First_label,Second_label,Third_label\nA0001,2,,\n")
    with pytest.raises(ECGFileError, match=r"'A0001'.*REFERENCE\.csv gives labels \['AF'\].*#Dx: RBBB.*disagree"):
        list(CPSC2018(tmp_path).records())
    with pytest.warns(ECGQualityWarning, match="CPSC2018: skipped record 'A0001'"):
        assert list(CPSC2018(tmp_path, on_error="skip").records()) == []


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_cpsc2018_reference_bytes(tmp_path_factory, data):
    root = tmp_path_factory.getbasetemp() / "fuzz_cpsc"
    root.mkdir(exist_ok=True)
    (root / "REFERENCE.csv").write_bytes(b"Recording,First_label,Second_label,Third_label\n" + data)
    try:
        list(CPSC2018(root).records())
    except ECGInputError:
        pass


# ================================================================================================================
# CinC 2017
# ================================================================================================================


def test_real_cinc2017(cinc2017_dir):
    db = CinC2017(cinc2017_dir)
    records = list(db.records())
    reference = pd.read_csv(cinc2017_dir / "REFERENCE.csv", header=None, names=["id", "label"], keep_default_na=False)
    assert [r.record_id for r in records] == sorted(reference["id"])
    assert Counter(r.labels[0] for r in records) == Counter(reference["label"])
    assert all(db.task_labels(r, "cinc2017") == r.labels for r in records)
    first = records[0]
    assert first.record_id == "A00001" and first.lead_names == ("I",) and first.sampling_rate == 300
    np.testing.assert_allclose(first.signal, scipy.io.loadmat(cinc2017_dir / "A00001.mat")["val"] / 1000.0, atol=1e-6)
    texts = {"N": "normal sinus rhythm.", "A": "atrial fibrillation.", "O": "other rhythm.", "~": "noisy recording."}
    assert db.text(first) == texts[first.labels[0]]


def test_cinc2017_errors_and_skip(tmp_path):
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00002,Q\n")
    with pytest.raises(ECGFileError, match=r"line 2: label 'Q' of record 'A00002'"):
        CinC2017(tmp_path).record_ids()
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\n")
    with pytest.raises(ECGFileNotFoundError, match=r"A00001\.mat"):
        list(CinC2017(tmp_path).records())
    with pytest.warns(ECGQualityWarning, match="skipped record 'A00001'"):
        assert list(CinC2017(tmp_path).records(on_error="skip")) == []
    (tmp_path / "REFERENCE.csv").unlink()
    with pytest.raises(ECGFileNotFoundError, match=r"REFERENCE\.csv \(labels\) is missing"):
        CinC2017(tmp_path)


def test_cinc2017_label_file_contradicting_itself(cinc2017_dir, tmp_path):
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00002,N\nA00001,A\n")
    with pytest.raises(ECGFileError, match=r"line 3: record 'A00001' is labelled 'A' here but 'N' on an earlier line"):
        CinC2017(tmp_path).record_ids()
    for ext in (".hea", ".mat"):
        shutil.copyfile(cinc2017_dir / f"A00001{ext}", tmp_path / f"A00001{ext}")
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00001,N\n")  # a repeated, consistent line is fine
    assert [r.labels for r in CinC2017(tmp_path).records()] == [("N",)]


def test_cinc2017_without_header_uses_the_challenge_constants(tmp_path):
    val = write_cinc_mat_record(tmp_path, rid="A00001", n_sig=1, n=600, fs=300)
    (tmp_path / "A00001.hea").unlink()
    (tmp_path / "REFERENCE.csv").write_text("A00001,A\n")
    (record,) = CinC2017(tmp_path).records()
    assert record.sampling_rate == 300 and record.lead_names == ("I",)
    np.testing.assert_allclose(record.signal, val / 1000.0, atol=1e-6)


_REFERENCE_TOKENS = st.sampled_from([*"A0123456789,NAO~Qx \n\"\t;", "A00001", "Recording", "\r\n"])


@FUZZ
@given(text=st.lists(_REFERENCE_TOKENS, max_size=60).map("".join))
def test_fuzz_cinc2017_reference(tmp_path_factory, text):
    root = tmp_path_factory.getbasetemp() / "fuzz_cinc2017"
    root.mkdir(exist_ok=True)
    (root / "REFERENCE.csv").write_text(text)
    try:
        list(CinC2017(root).records())
    except ECGInputError:
        pass


# ================================================================================================================
# Chapman-Shaoxing
# ================================================================================================================


def test_real_chapman_diagnostics(chapman_dir):
    db = Chapman(chapman_dir)
    ids = db.record_ids()
    assert len(ids) == 10646 and len(set(ids)) == len(ids)
    groups = Counter(db.task_labels(rid, "chapman")[0] for rid in ids)  # from Diagnostics.xlsx, no signal read
    assert groups == {"SB": 3889, "GSVT": 2307, "AFIB": 2225, "SR": 2225}
    assert sum(len(db.record_ids(s)) for s in ("train", "validation", "test")) == 10646
    with pytest.raises(ECGFileNotFoundError, match=r"Chapman record .*ECGData/.*\.csv does not exist"):
        db.load(ids[0])  # the signals are not part of the real data here


def test_chapman_reader(tmp_path, caplog):
    rhythms = {"MUSE_20180111_155115_19000": "SB", "MUSE_1": "AFIB", "MUSE_2": "AF", "MUSE_3": "SVT", "MUSE_4": "ST",
               "MUSE_5": "SR", "MUSE_6": "SA", "MUSE_7": "SAAWR", "MUSE_8": "XYZ", "MUSE_9": "XYZ"}
    signals = make_chapman(tmp_path, rhythms, n=600)
    db = Chapman(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tac_ecg_hf.data.databases.chapman"):
        records = list(db.records())
    assert "2 records have rhythms outside the four chapman groups" in caplog.text and "'XYZ': 2" in caplog.text
    assert [r.labels[0] for r in records] == list(rhythms.values())
    assert [db.task_labels(r, "chapman") for r in records] == [
        ("SB",), ("AFIB",), ("AFIB",), ("GSVT",), ("GSVT",), ("SR",), ("SR",), ("GSVT",), None, None]
    rec = records[1]
    assert rec.sampling_rate == 500 and rec.lead_names == STANDARD_LEADS and rec.units == "mV"
    np.testing.assert_allclose(rec.signal, signals["MUSE_1"].T / 1000, rtol=1e-5, atol=1e-6)
    assert rec.meta["PatientAge"] == 51 and rec.meta["rhythm"] == "AFIB" and db.text(rec) == "atrial fibrillation."
    for split in ("train", "validation", "test"):
        assert [r.record_id for r in db.records(split)] == [rid for rid in rhythms if assign_split(rid) == split]


def test_chapman_headerless_csv_and_errors(tmp_path):
    make_chapman(tmp_path, {"A": "SR"}, n=100, header=False)
    (record,) = Chapman(tmp_path).records()
    assert record.lead_names == STANDARD_LEADS and record.signal.shape == (12, 100)
    (tmp_path / "ECGData" / "A.csv").unlink()
    with pytest.raises(ECGFileNotFoundError, match=r"Chapman record 'A'.*A\.csv"):
        list(Chapman(tmp_path).records())
    pd.DataFrame({"FileName": ["A", "A"], "Rhythm": ["SR", "SB"]}).to_excel(tmp_path / "Diagnostics.xlsx", index=False)
    with pytest.raises(ECGFileError, match="lists FileName 'A' twice"):
        Chapman(tmp_path).record_ids()
    (tmp_path / "Diagnostics.xlsx").unlink()
    with pytest.raises(ECGFileNotFoundError, match="Diagnostics.xlsx"):
        Chapman(tmp_path)


# ================================================================================================================
# LUDB
# ================================================================================================================


def test_real_ludb(ludb_dir):
    db = LUDB(ludb_dir)
    ids = db.record_ids()
    table = pd.read_csv(ludb_dir / "ludb.csv")
    assert ids == [str(i) for i in sorted(table["ID"])]
    records = list(db.records())
    first = records[0]
    assert first.lead_names == STANDARD_LEADS and first.sampling_rate == 500 and first.signal.shape == (12, 5000)
    assert first.meta["age"] == "51" and first.meta["sex"] == "F"
    assert first.labels[0] == "Rhythm: Sinus bradycardia." and "Left ventricular hypertrophy." in first.labels
    assert db.text(first).startswith("Rhythm: Sinus bradycardia. Electric axis of the heart: left axis deviation.")
    # the rhythm statements of the headers agree with ludb.csv's Rhythms column (the first line of each cell)
    rhythm_of = {str(row.ID): row.Rhythms.splitlines()[0].strip() for row in table.itertuples()}
    assert all(r.labels[0] == f"Rhythm: {rhythm_of[r.record_id]}." for r in records)
    expected = {
        "Sinus rhythm": "SR", "Sinus arrhythmia": "SR", "Irregular sinus rhythm": "SR", "Sinus bradycardia": "SB",
        "Sinus tachycardia": "GSVT", "Atrial fibrillation": "AFIB", "Atrial flutter, typical": "AFIB",
    }
    assert {r.record_id: db.task_labels(r, "chapman") for r in records} == {
        rid: (expected[rhythm],) for rid, rhythm in rhythm_of.items()}


# ================================================================================================================
# PhysioNet/CinC 2020 format
# ================================================================================================================


def test_real_cinc2020_with_ptbxl(cinc2020_dir, ptbxl_dir):
    db = PhysioNet2020(cinc2020_dir, ptbxl_root=ptbxl_dir)
    ids = db.record_ids()
    assert len(ids) == 63
    assert {db.load(rid).meta["source"] for rid in ids} == {"CPSC-Extra", "Georgia", "PTB-XL", "PTB"}
    database = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id")
    for rid in (r for r in ids if r.startswith("HR")):
        record, ecg_id = db.load(rid), int(rid[2:])
        assert record.labels == tuple(eval(database.loc[ecg_id, "scp_codes"]))
        assert db.fold_of(rid) == record.meta["strat_fold"] == database.loc[ecg_id, "strat_fold"]
        assert db.text(record) == " ".join(database.loc[ecg_id, "report"].split()) and record.sampling_rate == 500
    hr9 = db.load("HR00009")
    assert db.task_labels(hr9, "ptbxl-super") == PTBXL(ptbxl_dir).load("9").meta["superclasses"]
    q1 = db.load("Q0001")
    assert q1.labels == ("164867002", "427084000") and db.fold_of("Q0001") is None
    assert db.split_of("Q0001") == assign_split("Q0001") and db.task_labels(q1, "chapman") == ("GSVT",)
    assert db.text(q1) == "old myocardial infarction. sinus tachycardia."
    e1, s1 = db.load("E00001"), db.load("S0001")
    assert e1.record_id == "E00001" and e1.labels == ()
    assert db.task_labels(e1, "chapman") is None and db.text(e1) is None
    assert s1.sampling_rate == 1000 and s1.meta["source"] == "PTB"
    without = PhysioNet2020(cinc2020_dir)
    assert without.load("HR00001").labels == () and without.fold_of("HR00001") is None


def test_physionet2020_nested_layout_and_duplicates(tmp_path):
    for folder, rid in (("training/cpsc_2018/g1", "A0001"), ("training/georgia/g1", "E00002")):
        (tmp_path / folder).mkdir(parents=True)
        write_cinc_mat_record(tmp_path / folder, rid=rid, n_sig=12, dx="164889003")
    db = PhysioNet2020(tmp_path)
    assert db.record_ids() == ["A0001", "E00002"]
    assert db.task_labels(db.load("A0001"), "cpsc2018") == ("AF",) and db.load("A0001").meta["source"] == "CPSC"
    (tmp_path / "copy").mkdir()
    write_cinc_mat_record(tmp_path / "copy", rid="A0001", n_sig=12)
    with pytest.raises(ECGFileError, match="record 'A0001' exists twice"):
        PhysioNet2020(tmp_path).record_ids()


# ================================================================================================================
# MIMIC-IV-ECG (files made in its real layout)
# ================================================================================================================


def make_mimic(root: Path) -> dict[str, np.ndarray]:
    import wfdb

    rows, measurements, signals = [], [], {}
    names = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]  # MIMIC's lead order
    for i, (subject, study) in enumerate([(10000032, 40689238), (10000032, 44458630), (10000117, 45090959)]):
        folder = root / "files" / f"p{str(subject)[:4]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True)
        signal = np.random.default_rng(i).standard_normal((5000, 12)) * 0.3
        wfdb.wrsamp(str(study), fs=500, units=["mV"] * 12, sig_name=names, p_signal=signal, fmt=["16"] * 12,
                    adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(folder), comments=["<date>: 2180-07-23"])
        rel = folder.relative_to(root) / str(study)
        ids = {"subject_id": subject, "study_id": study}
        rows.append({**ids, "file_name": study, "ecg_time": "2180-07-23 08:44:00", "path": str(rel)})
        reports = {f"report_{k}": "" for k in range(18)}
        reports.update(report_0="Sinus rhythm", report_1="Normal ECG" if i else "Borderline ECG")
        measurements.append({**ids, "cart_id": 6848296, **reports, "rr_interval": 659})
        signals[str(study)] = signal
    pd.DataFrame(rows).to_csv(root / "record_list.csv", index=False)
    pd.DataFrame(measurements).to_csv(root / "machine_measurements.csv", index=False)
    return signals


def test_mimic_iv_ecg_layout(tmp_path):
    signals = make_mimic(tmp_path)
    db = MIMICIVECG(tmp_path)
    assert db.record_ids() == ["40689238", "44458630", "45090959"]
    record = db.load("40689238")
    assert record.lead_names[:6] == ("I", "II", "III", "aVR", "aVF", "aVL") and record.sampling_rate == 500
    np.testing.assert_allclose(record.signal, signals["40689238"].T, atol=0.51 / 200)
    assert record.meta["subject_id"] == "10000032" and record.meta["ecg_time"] == "2180-07-23 08:44:00"
    assert db.text(record) == "Sinus rhythm. Borderline ECG." and db.task_labels(record, "chapman") is None
    assert db.split_of("40689238") == db.split_of("44458630") == assign_split("10000032")  # split by patient
    table = pd.read_csv(tmp_path / "record_list.csv")
    table.loc[0, "path"] = "/etc/passwd"
    table.to_csv(tmp_path / "record_list.csv", index=False)
    with pytest.raises(ECGFileError, match="is not a relative path inside"):
        MIMICIVECG(tmp_path).load("40689238")
    (tmp_path / "record_list.csv").unlink()
    with pytest.raises(ECGFileNotFoundError, match="record_list.csv"):
        MIMICIVECG(tmp_path)
