"""Fuzz tests of the file readers (tac_ecg_hf.data.io), and helpers writing files in the real layouts.

Whatever the bytes of a header, signal file, ``.npy``, ``.csv`` or ``.mat``, ``read_record`` returns a float32
record or raises :class:`ECGInputError` (its subclasses ECGFileError / ECGFileNotFoundError): never another
exception. The helpers (``write_wfdb``, ``write_cinc_mat_record``, ``make_chapman``) are shared by other test files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tac_ecg_hf.data import ECGFileError, ECGInputError, read_record, read_wfdb_header
from tac_ecg_hf.tasks import STANDARD_LEADS

FUZZ = settings(
    max_examples=int(os.environ.get("TAC_ECG_FUZZ_EXAMPLES", "60")),
    deadline=5000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ================================================================================================================
# helpers building files in the real layouts
# ================================================================================================================

GAINS = {"16": 1000.0, "24": 1000.0, "32": 1000.0, "212": 200.0, "80": 20.0, "508": 20.0, "516": 1000.0, "524": 1000.0}


def write_wfdb(tmp_path: Path, name="rec", fmt="16", n=1000, fs=500, names=("I", "AVL", "V1"), units=None, seed=0):
    """A WFDB record written by ``wfdb.wrsamp``; returns ``(header path, physical signal (n, leads))``."""
    import wfdb

    rng = np.random.default_rng(seed)
    signal = np.cumsum(rng.standard_normal((n, len(names))), axis=0) * 0.05
    if fmt in ("80", "508"):  # 8-bit formats: keep within +-127 ADC units
        signal = np.clip(signal, -6, 6)
    units = list(units or ["mV"] * len(names))
    wfdb.wrsamp(
        name, fs=fs, units=units, sig_name=list(names), p_signal=signal, fmt=[fmt] * len(names),
        adc_gain=[GAINS[fmt]] * len(names), baseline=[0] * len(names), write_dir=str(tmp_path),
    )
    return tmp_path / f"{name}.hea", signal


def write_cinc_mat_record(
    directory: Path, rid="A9001", n_sig=12, n=1000, fs=500, dx="AF,RBBB", seed=0, gain=1000, baseline=0,
    record_line=None,
):
    """A PhysioNet/CinC 2020 style record: MAT v4 'val' int16 + header with '16+24' format and #Dx."""
    rng = np.random.default_rng(seed)
    val = (np.cumsum(rng.integers(-20, 21, size=(n_sig, n)), axis=1)).astype(np.int16)
    scipy.io.savemat(directory / f"{rid}.mat", {"val": val}, format="4")
    lines = [record_line or f"{rid} {n_sig} {fs} {n} 05-Feb-2020 11:39:16"]
    names = STANDARD_LEADS if n_sig == 12 else [f"L{i}" for i in range(n_sig)]
    for i in range(n_sig):
        checksum = int(val[i].astype(np.int64).sum()) & 0xFFFF
        checksum = checksum - 0x10000 if checksum >= 0x8000 else checksum
        lines.append(f"{rid}.mat 16+24 {gain}/mV 16 {baseline} {val[i, 0]} {checksum} 0 {names[i]}")
    lines += ["#Age: 61", "#Sex: Female", f"#Dx: {dx}", "#Rx: Unknown"]
    (directory / f"{rid}.hea").write_text("\n".join(lines) + "\n")
    return val


def make_chapman(root: Path, rhythms: dict[str, str], n=5000, header=True) -> dict[str, np.ndarray]:
    """Diagnostics.xlsx + ECGData/<FileName>.csv (microvolts) in the Chapman-Shaoxing layout."""
    import pandas as pd

    (root / "ECGData").mkdir(parents=True, exist_ok=True)
    rows, signals = [], {}
    for i, (name, rhythm) in enumerate(rhythms.items()):
        rows.append({"FileName": name, "Rhythm": rhythm, "Beat": "NONE", "PatientAge": 50 + i, "Gender": "MALE",
                     "VentricularRate": 70, "AtrialRate": 70, "QRSDuration": 90, "QTInterval": 400})
        signal = np.random.default_rng(i).normal(0, 300, size=(n, 12)).round(3)  # microvolts
        signals[name] = signal
        lines = ([",".join(STANDARD_LEADS)] if header else []) + [",".join(f"{v:g}" for v in row) for row in signal]
        (root / "ECGData" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    pd.DataFrame(rows).to_excel(root / "Diagnostics.xlsx", index=False)
    return signals


# ================================================================================================================
# fuzzing: random bytes and mutated files give a record or ECGInputError, nothing else
# ================================================================================================================


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_header_random_bytes(fuzz_dir, data):
    path = fuzz_dir / "random.hea"
    path.write_bytes(data)
    try:
        read_wfdb_header(path)
    except ECGFileError:
        pass


@FUZZ
@given(data=st.binary(max_size=4096), ext=st.sampled_from([".hea", ".mat", ".npy", ".csv", ".dat"]))
def test_fuzz_read_record_random_bytes(fuzz_dir, data, ext):
    for stale in fuzz_dir.glob("blob.*"):
        stale.unlink()
    path = fuzz_dir / f"blob{ext}"
    path.write_bytes(data)
    try:
        read_record(path, sampling_rate=500)
    except ECGInputError:
        pass


_MUTATION_CHARS = st.text(alphabet="0123456789 -+/().:#xeE\nabcIVLmVµ\t", max_size=6)


def _apply_edits(text: str, edits) -> str:
    for position, op, chunk in edits:
        i = position % (len(text) + 1)
        if op == "ins":
            text = text[:i] + chunk + text[i:]
        elif op == "del":
            text = text[:i] + text[i + 1 + len(chunk):]
        else:
            text = text[:i] + chunk + text[i + len(chunk):]
    return text


@pytest.fixture(scope="module")
def fuzz_records(tmp_path_factory):
    """A CinC 2020 style .hea/.mat record, a WFDB .hea/.dat (format 212) record, and a CinC 2017 style record."""
    directory = tmp_path_factory.mktemp("fuzzrec")
    write_cinc_mat_record(directory, n=500)
    write_wfdb(directory, fmt="212", n=500)
    cinc2017_line = "A00001 1 300 900 2014-05-08 05:05:15"  # the timestamp wfdb cannot parse
    write_cinc_mat_record(directory, rid="A00001", n_sig=1, n=900, fs=300, record_line=cinc2017_line)
    return directory


@FUZZ
@given(
    which=st.sampled_from(["A9001", "rec", "A00001"]),
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["ins", "del", "rep"]), _MUTATION_CHARS),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzz_mutated_real_layout_headers(fuzz_records, fuzz_dir, which, edits):
    original = (fuzz_records / f"{which}.hea").read_text()
    signal_file = "rec.dat" if which == "rec" else f"{which}.mat"
    shutil.copyfile(fuzz_records / signal_file, fuzz_dir / signal_file)
    path = fuzz_dir / f"{which}.hea"
    path.write_text(_apply_edits(original, edits))
    try:
        header = read_wfdb_header(path)
        assert header.n_sig >= 0
    except ECGFileError:
        pass
    try:
        record = read_record(path)
        assert record.signal.ndim == 2 and record.signal.dtype == np.float32
    except ECGInputError:
        pass


@FUZZ
@given(which=st.sampled_from(["A9001.mat", "rec.dat"]), cut=st.integers(0, 4000), flip=st.integers(0, 4000))
def test_fuzz_truncated_or_flipped_signal_files(fuzz_records, fuzz_dir, which, cut, flip):
    stem = which.split(".")[0]
    shutil.copyfile(fuzz_records / f"{stem}.hea", fuzz_dir / f"{stem}.hea")
    data = bytearray((fuzz_records / which).read_bytes())
    if flip < len(data):
        data[flip] ^= 0xA5
    data = data[: max(0, len(data) - cut)]
    (fuzz_dir / which).write_bytes(bytes(data))
    try:
        read_record(fuzz_dir / f"{stem}.hea")
    except ECGInputError:
        pass


@pytest.fixture(scope="module")
def fuzz_plain_files(tmp_path_factory):
    """Valid .npy, .csv and bare .mat files to mutate."""
    directory = tmp_path_factory.mktemp("fuzzplain")
    signal = np.random.default_rng(0).standard_normal((12, 200)).astype(np.float32)
    np.save(directory / "x.npy", signal)
    rows = "\n".join(",".join(f"{v:.3f}" for v in row) for row in signal.T)
    (directory / "x.csv").write_text(",".join(STANDARD_LEADS) + "\n" + rows)
    scipy.io.savemat(directory / "x.mat", {"val": (signal * 1000).astype(np.int16)})
    return directory


@FUZZ
@given(
    ext=st.sampled_from([".npy", ".csv", ".mat"]),
    cut=st.integers(0, 3000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
)
def test_fuzz_mutated_npy_csv_mat(fuzz_plain_files, fuzz_dir, ext, cut, flips):
    data = bytearray((fuzz_plain_files / f"x{ext}").read_bytes())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    data = data[: max(0, len(data) - cut)]
    for stale in fuzz_dir.glob("m.*"):
        stale.unlink()
    path = fuzz_dir / f"m{ext}"
    path.write_bytes(bytes(data))
    try:
        record = read_record(path, sampling_rate=500, gain=1000 if ext == ".mat" else None)
        assert record.signal.dtype == np.float32 and record.signal.ndim == 2
    except ECGInputError:
        pass
