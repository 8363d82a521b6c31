"""Hypothesis fuzzing of the metadata-driven database readers (PTB-XL database/statements, Chapman diagnostics and
signal CSVs, MIMIC-IV-ECG record list): whatever the files hold, the readers yield records or raise ECGInputError,
never another exception."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tac_ecg_hf.data import MIMICIVECG, PTBXL, Chapman, ECGInputError
from tac_ecg_hf.tasks import STANDARD_LEADS

FUZZ = settings(
    max_examples=int(os.environ.get("TAC_ECG_FUZZ_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

DB_HEADER = "ecg_id,patient_id,report,scp_codes,strat_fold,filename_lr,filename_hr\n"
GOOD_ROW = (
    '1,15709.0,sinus rhythm,"{\'NORM\': 100.0, \'SR\': 0.0}",3,records100/00000/00001_lr,records500/00000/00001_hr\n'
)
STATEMENTS = (
    ",description,diagnostic,form,rhythm,diagnostic_class\nNORM,normal ECG,1.0,,,NORM\nSR,sinus rhythm,,,1.0,\n"
)
TASKS = ("ptbxl-super", "cpsc2018", "chapman", "cinc2017")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_meta")


def _ptbxl_dir(root, database: bytes, statements: bytes):
    d = root / "ptbxl"
    d.mkdir(exist_ok=True)
    (d / "ptbxl_database.csv").write_bytes(database)
    (d / "scp_statements.csv").write_bytes(statements)
    np.savez(d / "arrays.npz", X=np.zeros((1, 1000, 12), np.float16), ecg_id=np.array([1]))
    return d


def _consume(make_db):
    """Every record, its task labels and its text; an ECGInputError anywhere ends the run."""
    try:
        db = make_db()
        for split in (None, "train", "validation", "test"):
            db.record_ids(split)
        records = list(db.records())
        for record in records:
            assert record.signal.ndim == 2 and np.isfinite(record.sampling_rate)
            for task in TASKS:
                assert db.task_labels(record, task) is None or isinstance(db.task_labels(record, task), tuple)
            db.text(record)
    except ECGInputError:
        return []
    return records


@FUZZ
@given(data=st.binary(max_size=400), keep_header=st.booleans())
def test_fuzz_ptbxl_database_bytes(root, data, keep_header):
    database = (DB_HEADER.encode() if keep_header else b"") + data
    d = _ptbxl_dir(root, database, STATEMENTS.encode())
    _consume(lambda: PTBXL(d, array_file=str(d / "arrays.npz")))


@FUZZ
@given(
    scp=st.one_of(
        st.text(max_size=40), st.sampled_from(["{'NORM': 100.0}", "{'NORM': 'x'}", "[1,2]", "{", "None", "{'ZZZ': 1}"])
    ),
    fold=st.one_of(st.integers(-3, 14).map(str), st.text(max_size=4)),
)
def test_fuzz_ptbxl_fields(root, scp, fold):
    row = f'1,1.0,report,"{scp.replace(chr(34), "")}",{fold.replace(",", "")},records100/00000/00001_lr,x\n'
    d = _ptbxl_dir(root, (DB_HEADER + row).encode(), STATEMENTS.encode())
    _consume(lambda: PTBXL(d, array_file=str(d / "arrays.npz"), text_source="both"))


@FUZZ
@given(statements=st.binary(max_size=300))
def test_fuzz_ptbxl_statements_bytes(root, statements):
    d = _ptbxl_dir(root, (DB_HEADER + GOOD_ROW).encode(), statements)
    _consume(lambda: PTBXL(d, array_file=str(d / "arrays.npz"), text_source="scp"))


@FUZZ
@given(
    diagnostics=st.binary(max_size=300),
    signal=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.just("x")), max_size=13),
            max_size=30,
        ).map(lambda rows: "\n".join([",".join(STANDARD_LEADS)] + [",".join(map(str, r)) for r in rows]).encode()),
    ),
)
def test_fuzz_chapman_diagnostics_and_signal(root, diagnostics, signal):
    d = root / "chapman"
    (d / "ECGData").mkdir(parents=True, exist_ok=True)
    (d / "Diagnostics.csv").write_bytes(b"FileName,Rhythm,Beat\nMUSE_1,SR,NONE\n" + diagnostics)
    (d / "ECGData" / "MUSE_1.csv").write_bytes(signal)
    _consume(lambda: Chapman(d))


@FUZZ
@given(data=st.binary(max_size=300), keep_header=st.booleans())
def test_fuzz_mimic_record_list(root, data, keep_header):
    d = root / "mimic"
    d.mkdir(exist_ok=True)
    header = b"subject_id,study_id,file_name,ecg_time,path\n" if keep_header else b""
    (d / "record_list.csv").write_bytes(header + data)
    _consume(lambda: MIMICIVECG(d))
