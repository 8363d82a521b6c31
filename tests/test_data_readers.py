"""Tests of tac_ecg_hf.data.readers: WFDB parsing, single-file readers, dataset readers, splits, fuzzing."""

from __future__ import annotations

import json
import os
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tac_ecg_hf.data import (
    ECGFileError,
    ECGFileNotFoundError,
    ECGInputError,
    assign_split,
    chapman_rhythm_group,
    parse_cpsc2018_labels,
    ptbxl_superclass_labels,
    read_chapman,
    read_cinc2017,
    read_cpsc2018,
    read_ptbxl,
    read_record,
    read_wfdb_header,
)
from tac_ecg_hf.data.readers import load_ptbxl_metadata
from tac_ecg_hf.tasks import STANDARD_LEADS

FUZZ = settings(max_examples=int(os.environ.get("TAC_ECG_FUZZ_EXAMPLES", "60")), deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ================================================================================================
# helpers building files in the real layouts
# ================================================================================================


_GAINS = {"16": 1000.0, "24": 1000.0, "32": 1000.0, "212": 200.0, "80": 20.0}


def write_wfdb(tmp_path: Path, name="rec", fmt="16", n=1000, fs=500, names=("I", "AVL", "V1"), units=None, seed=0):
    import wfdb

    rng = np.random.default_rng(seed)
    signal = np.cumsum(rng.standard_normal((n, len(names))), axis=0) * 0.05
    units = list(units or ["mV"] * len(names))
    wfdb.wrsamp(
        name, fs=fs, units=units, sig_name=list(names), p_signal=signal, fmt=[fmt] * len(names),
        adc_gain=[_GAINS[fmt]] * len(names), baseline=[0] * len(names), write_dir=str(tmp_path),
    )
    return tmp_path / f"{name}.hea", signal


def write_cinc_mat_record(directory: Path, rid="A9001", n_sig=12, n=1000, fs=500, dx="AF,RBBB", seed=0, gain=1000, baseline=0):
    """A PhysioNet/CinC 2020 style record: MAT v4 'val' int16 + header with '16+24' format and #Dx."""
    rng = np.random.default_rng(seed)
    val = (np.cumsum(rng.integers(-20, 21, size=(n_sig, n)), axis=1)).astype(np.int16)
    scipy.io.savemat(directory / f"{rid}.mat", {"val": val}, format="4")
    lines = [f"{rid} {n_sig} {fs} {n} 05-Feb-2020 11:39:16"]
    names = STANDARD_LEADS if n_sig == 12 else [f"L{i}" for i in range(n_sig)]
    for i in range(n_sig):
        checksum = int(val[i].astype(np.int64).sum()) & 0xFFFF
        checksum = checksum - 0x10000 if checksum >= 0x8000 else checksum
        lines.append(f"{rid}.mat 16+24 {gain}/mV 16 {baseline} {val[i, 0]} {checksum} 0 {names[i]}")
    lines += ["#Age: 61", "#Sex: Female", f"#Dx: {dx}", "#Rx: Unknown"]
    (directory / f"{rid}.hea").write_text("\n".join(lines) + "\n")
    return val


# ================================================================================================
# WFDB header parser
# ================================================================================================


def test_read_wfdb_header_cpsc_style(tmp_path):
    write_cinc_mat_record(tmp_path, dx="AF,RBBB")
    header = read_wfdb_header(tmp_path / "A9001.hea")
    assert (header.record_name, header.n_sig, header.fs, header.n_samples) == ("A9001", 12, 500.0, 1000)
    assert header.base_time == "05-Feb-2020 11:39:16" and header.base_datetime.year == 2020
    spec = header.signals[4]
    assert (spec.file_name, spec.fmt, spec.byte_offset, spec.gain, spec.units, spec.description) == (
        "A9001.mat", "16", 24, 1000.0, "mV", "aVL")
    assert header.info["Dx"] == "AF,RBBB" and header.info["Age"] == "61" and "Sex: Female" in header.comments


def test_read_wfdb_header_gain_baseline_and_odd_timestamps(tmp_path):
    path = tmp_path / "x.hea"
    path.write_text(
        "x 2 360/2(5) 650000 2014-05-08 05:05:15\n"
        "x.dat 212 200(1024)/mV 11 1024 995 -22131 0 MLII\n"
        "x.dat 212 0 11 1024 1011 20052 0 V5 extra words\n"
        "# free comment\n"
    )
    header = read_wfdb_header(path)
    assert header.fs == 360 and header.counter_freq == 2 and header.base_counter == 5
    assert header.signals[0].baseline == 1024 and header.signals[0].gain == 200
    assert header.signals[1].gain == 200.0  # zero gain means the WFDB default 200
    assert header.signals[1].description == "V5 extra words"
    assert header.base_datetime is not None
    path.write_text("x 1 300 9000 not-a-date 99:99\nx.mat 16+24 1000/mV 16 0 0 0 0 ECG\n")
    assert read_wfdb_header(path).base_datetime is None  # unparseable timestamps are tolerated


@pytest.mark.parametrize(
    "text, match",
    [
        ("x 3 500 1000\nx.dat 16 200/mV 16 0 0 0 0 I\n", "declares 3 signals but the header has 1"),
        ("x 1 500 1000\n", "declares 1 signals but the header has 0"),
        ("x two 500\n", "number of signals must be an integer"),
        ("x 1 fast 1000\nx.dat 16\n", "sampling frequency"),
        ("x 1 500 1000\nx.dat sixteen\n", "storage format"),
        ("x 1 500 1000\nx.dat 16 lots/mV\n", "ADC gain"),
        ("# only a comment\n", "no record line"),
        ("x/2 1 500 1000\nx.dat 16\n", "multi-segment"),
        ("x 0 500\n", "at least one is needed"),
    ],
)
def test_read_wfdb_header_errors(tmp_path, text, match):
    path = tmp_path / "bad.hea"
    path.write_text(text)
    with pytest.raises(ECGFileError, match=match) as err:
        read_wfdb_header(path)
    assert str(path) in str(err.value)


def test_read_wfdb_header_binary_and_missing(tmp_path):
    path = tmp_path / "bin.hea"
    path.write_bytes(b"x 1 500\x00\x01\x02")
    with pytest.raises(ECGFileError, match="binary"):
        read_wfdb_header(path)
    with pytest.raises(ECGFileNotFoundError, match="does not exist") as err:
        read_wfdb_header(tmp_path / "nope.hea")
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ECGInputError)


# ================================================================================================
# WFDB records: round trips and corrupt files
# ================================================================================================


@pytest.mark.parametrize("fmt", ["16", "212", "24", "32", "80"])
def test_wfdb_round_trip(tmp_path, fmt):
    hea, signal = write_wfdb(tmp_path, fmt=fmt, n=1001)
    record = read_record(hea)
    assert record.lead_names == ("I", "aVL", "V1") and record.sampling_rate == 500 and record.units == "mV"
    assert record.signal.shape == (3, 1001) and record.signal.dtype == np.float32
    np.testing.assert_allclose(record.signal.T, signal, atol=0.51 / _GAINS[fmt])
    assert record.meta["raw_lead_names"] == ("I", "AVL", "V1")
    # the stem and the .dat path dispatch to the same reader
    np.testing.assert_array_equal(read_record(tmp_path / "rec").signal, record.signal)
    np.testing.assert_array_equal(read_record(tmp_path / "rec.dat").signal, record.signal)


def test_wfdb_units_converted_to_mv(tmp_path):
    hea, signal = write_wfdb(tmp_path, names=("I", "II"), units=["uV", "mV"])
    record = read_record(hea)
    assert record.units == "mV"
    np.testing.assert_allclose(record.signal[0], signal[:, 0] / 1000, atol=1e-5)
    np.testing.assert_allclose(record.signal[1], signal[:, 1], atol=1e-3)


def test_wfdb_matches_wfdb_package(tmp_path):
    import wfdb

    hea, _ = write_wfdb(tmp_path, fmt="212", n=777)
    ours = read_record(hea)
    theirs = wfdb.rdrecord(str(tmp_path / "rec"))
    np.testing.assert_allclose(ours.signal, theirs.p_signal.T, atol=1e-6)


def test_cinc_mat_record_gain_and_baseline(tmp_path):
    val = write_cinc_mat_record(tmp_path, n_sig=2, gain=500, baseline=10)
    record = read_record(tmp_path / "A9001.hea")
    np.testing.assert_allclose(record.signal, (val.astype(float) - 10) / 500, atol=1e-6)
    assert record.meta["header_info"]["Dx"] == "AF,RBBB"
    # the .mat path finds its header
    np.testing.assert_array_equal(read_record(tmp_path / "A9001.mat").signal, record.signal)


def test_truncated_dat_raises(tmp_path):
    hea, _ = write_wfdb(tmp_path, fmt="16", n=1000)
    dat = tmp_path / "rec.dat"
    dat.write_bytes(dat.read_bytes()[:-7])
    with pytest.raises(ECGFileError, match=r"rec\.dat.*truncated"):
        read_record(hea)


def test_corrupt_dat_fails_checksum(tmp_path):
    hea, _ = write_wfdb(tmp_path, fmt="16", n=1000)
    dat = tmp_path / "rec.dat"
    data = bytearray(dat.read_bytes())
    data[100] ^= 0x55
    dat.write_bytes(bytes(data))
    with pytest.raises(ECGFileError, match="checksum"):
        read_record(hea)
    assert read_record(hea, verify_checksum=False).signal.shape == (3, 1000)


def test_truncated_mat_raises(tmp_path):
    write_cinc_mat_record(tmp_path)
    mat = tmp_path / "A9001.mat"
    mat.write_bytes(mat.read_bytes()[:5000])
    with pytest.raises(ECGFileError, match=r"A9001\.mat"):
        read_record(tmp_path / "A9001.hea")


def test_header_disagreeing_with_mat_raises(tmp_path):
    write_cinc_mat_record(tmp_path, n=1000)
    hea = tmp_path / "A9001.hea"
    text = hea.read_text()
    hea.write_text(text.replace("A9001 12 500 1000", "A9001 12 500 1200", 1))
    with pytest.raises(ECGFileError, match="holds 1000 samples per signal but .* declares 1200"):
        read_record(hea)
    lines = text.splitlines()
    hea.write_text("\n".join([lines[0].replace(" 12 ", " 11 ", 1)] + lines[1:12] + lines[13:]) + "\n")
    with pytest.raises(ECGFileError, match="declares 11 signals"):
        read_record(hea)


def test_missing_signal_file(tmp_path):
    write_cinc_mat_record(tmp_path)
    (tmp_path / "A9001.mat").unlink()
    with pytest.raises(ECGFileNotFoundError, match=r"A9001\.mat"):
        read_record(tmp_path / "A9001.hea")


def test_invalid_samples_become_nan(tmp_path):
    hea, _ = write_wfdb(tmp_path, fmt="16", n=100, names=("I",))
    dat = tmp_path / "rec.dat"
    data = np.frombuffer(dat.read_bytes(), dtype="<i2").copy()
    data[5] = -32768
    dat.write_bytes(data.tobytes())
    record = read_record(hea, verify_checksum=False)
    assert np.isnan(record.signal[0, 5]) and np.isfinite(record.signal[0, 6])


# ================================================================================================
# .mat / .npy / .csv readers
# ================================================================================================


def test_bare_mat_val_needs_sampling_rate_and_gain(tmp_path):
    val = (np.arange(24).reshape(2, 12) * 10).astype(np.int16)
    path = tmp_path / "bare.mat"
    scipy.io.savemat(path, {"val": val})
    with pytest.raises(ECGInputError, match=r"bare\.mat.*sampling_rate=") as err:
        read_record(path, lead_names=("I", "II"), gain=1000)
    assert "bare.json" in str(err.value)
    with pytest.raises(ECGInputError, match="gain="):
        read_record(path, lead_names=("I", "II"), sampling_rate=250)
    record = read_record(path, lead_names=("I", "II"), sampling_rate=250, gain=1000)
    np.testing.assert_allclose(record.signal, val / 1000, atol=1e-6)


def test_original_cpsc_struct_mat(tmp_path):
    data = np.random.default_rng(0).standard_normal((12, 5000))
    scipy.io.savemat(tmp_path / "A0001.mat", {"ECG": {"sex": "Male", "age": 74, "data": data}})
    record = read_record(tmp_path / "A0001.mat")
    assert record.sampling_rate == 500 and record.lead_names == STANDARD_LEADS and record.units == "mV"
    np.testing.assert_allclose(record.signal, data, atol=1e-6)
    assert record.meta["sex"] == "Male" and record.meta["age"] == 74


def test_mat_v73_and_garbage(tmp_path):
    path = tmp_path / "x.mat"
    path.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon" + b" " * 60 + b"\x00\x02IM" + b"\x00" * 400)
    with pytest.raises(ECGFileError, match=r"x\.mat"):
        read_record(path, sampling_rate=500, lead_names=("I",))


@pytest.mark.parametrize("time_first", [False, True])
def test_npy_orientation_and_sidecar(tmp_path, time_first):
    signal = np.random.default_rng(0).standard_normal((12, 2000)).astype(np.float32)
    path = tmp_path / "ecg.npy"
    np.save(path, signal.T if time_first else signal)
    with pytest.raises(ECGInputError, match=r"sampling_rate=<Hz>.*ecg\.json"):
        read_record(path)
    record = read_record(path, sampling_rate=500)
    assert record.lead_names == STANDARD_LEADS
    np.testing.assert_array_equal(record.signal, signal)
    (tmp_path / "ecg.json").write_text(json.dumps({"sampling_rate": 250, "units": "uV", "labels": ["AF"]}))
    record = read_record(path)
    assert record.sampling_rate == 250 and record.labels == ("AF",)
    np.testing.assert_allclose(record.signal, signal / 1000, rtol=1e-6)


def test_npy_lead_names_and_ambiguity(tmp_path):
    path = tmp_path / "two.npy"
    np.save(path, np.zeros((500, 2)))
    record = read_record(path, lead_names=["V1", "avl"], sampling_rate=100)
    assert record.signal.shape == (2, 500) and record.lead_names == ("V1", "aVL")
    with pytest.raises(ECGInputError, match="pass lead_names"):
        read_record(path, sampling_rate=100)
    np.save(path, np.zeros((20, 20)))
    with pytest.raises(ECGInputError, match="cannot tell leads from samples"):
        read_record(path, sampling_rate=100)


def test_npy_truncated_and_pickled(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((12, 1000)))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ECGFileError, match="truncated"):
        read_record(path, sampling_rate=100)
    np.save(path, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ECGFileError, match="no pickle"):
        read_record(path, sampling_rate=100)


def test_csv_with_header_and_time_column(tmp_path):
    signal = np.random.default_rng(1).standard_normal((300, 3))
    path = tmp_path / "rec.csv"
    lines = ["Time (s),I,AVL,v2"] + [f"{i / 100:.2f}," + ",".join(f"{v:.6f}" for v in row) for i, row in enumerate(signal)]
    path.write_text("\n".join(lines))
    record = read_record(path, sampling_rate=100)
    assert record.lead_names == ("I", "aVL", "V2") and record.signal.shape == (3, 300)
    np.testing.assert_allclose(record.signal, signal.T, atol=1e-5)
    with pytest.raises(ECGInputError, match="sampling_rate"):
        read_record(path)
    lines[5] = lines[5].rsplit(",", 1)[0] + ",abc"
    path.write_text("\n".join(lines))
    with pytest.raises(ECGFileError, match=r"data row 5, column 'v2': 'abc' is not a number"):
        read_record(path, sampling_rate=100)


def test_read_record_unknown_paths(tmp_path):
    with pytest.raises(ECGFileNotFoundError, match="tried"):
        read_record(tmp_path / "missing")
    (tmp_path / "x.edf").write_bytes(b"0")
    with pytest.raises(ECGFileError, match="unsupported file type"):
        read_record(tmp_path / "x.edf")


# ================================================================================================
# Fuzzing: random bytes and mutated headers must give ECGFileError/ECGInputError, nothing else
# ================================================================================================


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
    """A CinC 2020 style .hea/.mat record and a WFDB .hea/.dat (format 212) record."""
    directory = tmp_path_factory.mktemp("fuzzrec")
    write_cinc_mat_record(directory, n=500)
    write_wfdb(directory, fmt="212", n=500)
    return directory


@FUZZ
@given(
    which=st.sampled_from(["A9001", "rec"]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["ins", "del", "rep"]), _MUTATION_CHARS), min_size=1, max_size=6),
)
def test_fuzz_mutated_real_layout_headers(fuzz_records, fuzz_dir, which, edits):
    original = (fuzz_records / f"{which}.hea").read_text()
    signal_file = "A9001.mat" if which == "A9001" else "rec.dat"
    shutil.copyfile(fuzz_records / signal_file, fuzz_dir / signal_file)
    path = fuzz_dir / f"{which}.hea"
    path.write_text(_apply_edits(original, edits))
    try:
        header = read_wfdb_header(path)
        assert header.n_sig == len(header.signals)
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
    (directory / "x.csv").write_text(",".join(STANDARD_LEADS) + "\n" + "\n".join(",".join(f"{v:.3f}" for v in row) for row in signal.T))
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


# ================================================================================================
# Splits
# ================================================================================================


def test_assign_split_is_deterministic_and_proportional():
    ids = [f"A{i:05d}" for i in range(6000)]
    splits = [assign_split(i) for i in ids]
    assert splits == [assign_split(i) for i in ids]
    counts = Counter(splits)
    assert abs(counts["train"] / 6000 - 0.7) < 0.03 and abs(counts["test"] / 6000 - 0.15) < 0.03
    assert assign_split("A00001", seed=0) == assign_split("A00001", seed=0)
    assert [assign_split(i, seed=1) for i in ids] != splits
    assert {assign_split(i, (1.0, 0.0, 0.0)) for i in ids[:100]} == {"train"}
    with pytest.raises(ValueError, match="sum to 1"):
        assign_split("x", (0.5, 0.2, 0.2))


# ================================================================================================
# Real data (skipped when ../shared/data is absent)
# ================================================================================================


def test_real_cpsc2018(cpsc2018_dir):
    record = read_record(cpsc2018_dir / "A0001.hea")
    assert record.lead_names == STANDARD_LEADS and record.sampling_rate == 500 and record.signal.shape == (12, 7500)
    # header line 'A0001.mat 16+24 1000/mV 16 0 28 ...': first sample 28 ADC -> 0.028 mV
    np.testing.assert_allclose(record.signal[:, 0], [0.028, 0.007, -0.021, -0.017, 0.024, -0.007, -0.29, -0.204, -0.096, -0.112, -0.596, -0.016], atol=1e-6)
    records = list(read_cpsc2018(cpsc2018_dir))
    assert len(records) == 120
    counts = Counter(label for r in records for label in r.labels)
    assert set(counts) == {"Normal", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"}
    assert sum(len(r.labels) == 2 for r in records) == 4  # 'AF,RBBB'
    assert all(r.sampling_rate == 500 and r.num_leads == 12 and 5000 <= r.num_samples <= 30000 for r in records)
    train = [r.record_id for r in read_cpsc2018(cpsc2018_dir, split="train")]
    assert train == [r.record_id for r in records if r.meta["split"] == "train"]
    assert len(list(read_cpsc2018(cpsc2018_dir, limit=3))) == 3


def test_real_cpsc2018_with_snomed_codes(cpsc2018_dir, tmp_path):
    for ext in (".hea", ".mat"):
        shutil.copyfile(cpsc2018_dir / f"A0001{ext}", tmp_path / f"A0001{ext}")
    hea = tmp_path / "A0001.hea"
    hea.write_text(hea.read_text().replace("#Dx: RBBB", "#Dx: 59118001,164889003,251146004"))
    (record,) = read_cpsc2018(tmp_path)
    assert record.labels == ("AF", "RBBB") and record.meta["other_dx"] == ("251146004",)


def test_cpsc2018_original_layout(tmp_path):
    rng = np.random.default_rng(0)
    for rid in ("A0001", "A0002", "A0003"):
        scipy.io.savemat(tmp_path / f"{rid}.mat", {"ECG": {"sex": "Male", "age": 50, "data": rng.standard_normal((12, 5000))}})
    (tmp_path / "REFERENCE.csv").write_text(
        "Recording,First_label,Second_label,Third_label\nA0001,5,,\nA0002,2,5,\nA0003,1,,\n"
    )
    records = {r.record_id: r for r in read_cpsc2018(tmp_path)}
    assert records["A0001"].labels == ("RBBB",) and records["A0002"].labels == ("AF", "RBBB")
    assert records["A0003"].labels == ("Normal",) and records["A0003"].sampling_rate == 500
    (tmp_path / "REFERENCE.csv").write_text("Recording,First_label\nA0001,12\n")
    with pytest.raises(ECGFileError, match=r"line 2 \(record A0001\): label '12' is not a number in 1..9"):
        list(read_cpsc2018(tmp_path))


def test_parse_cpsc2018_labels():
    assert parse_cpsc2018_labels("RBBB,AF") == (("AF", "RBBB"), ())
    assert parse_cpsc2018_labels("426783006") == (("Normal",), ())
    assert parse_cpsc2018_labels("IAVB, 164884008, foo") == (("I-AVB", "PVC"), ("foo",))


def test_real_cinc2017(cinc2017_dir):
    header = read_wfdb_header(cinc2017_dir / "A00001.hea")  # timestamp that wfdb cannot parse
    assert header.fs == 300 and header.n_samples == 9000 and header.signals[0].description == "ECG"
    records = list(read_cinc2017(cinc2017_dir))
    assert len(records) == 240
    assert Counter(r.labels[0] for r in records) == {"N": 118, "O": 57, "A": 43, "~": 22}
    first = records[0]
    assert first.record_id == "A00001" and first.lead_names == ("I",) and first.sampling_rate == 300
    val = scipy.io.loadmat(cinc2017_dir / "A00001.mat")["val"]
    np.testing.assert_allclose(first.signal, val / 1000.0, atol=1e-6)
    assert all(9 * 300 <= r.num_samples <= 61 * 300 for r in records)


def test_cinc2017_errors(tmp_path):
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00002,Q\n")
    with pytest.raises(ECGFileError, match=r"line 2: label 'Q' of record 'A00002'"):
        list(read_cinc2017(tmp_path))
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\n")
    with pytest.raises(ECGFileNotFoundError, match=r"A00001\.mat"):
        list(read_cinc2017(tmp_path))
    with pytest.warns(UserWarning, match="skipped record 'A00001'"):
        assert list(read_cinc2017(tmp_path, on_error="skip")) == []


def test_real_ptbxl_array_file_and_folds(ptbxl_dir):
    records = list(read_ptbxl(ptbxl_dir, array_file="ptbxl_1519_100hz_f16.npz"))
    assert len(records) == 1519
    rec = records[0]
    assert rec.units == "normalized" and rec.sampling_rate == 100 and rec.signal.shape == (12, 1000)
    assert rec.lead_names == STANDARD_LEADS and isinstance(rec.meta["scp_codes"], dict) and rec.meta["report"]
    for r in records:
        assert r.meta["split"] == {**{f: "train" for f in range(1, 9)}, 9: "validation", 10: "test"}[r.meta["strat_fold"]]
    validation = list(read_ptbxl(ptbxl_dir, folds="validation"))  # the .npz is found automatically
    assert {r.meta["strat_fold"] for r in validation} == {9} and len(validation) == sum(r.meta["strat_fold"] == 9 for r in records)
    assert [r.record_id for r in read_ptbxl(ptbxl_dir, folds=[10], limit=4)] == [r.record_id for r in records if r.meta["strat_fold"] == 10][:4]
    with pytest.raises(ValueError, match="fold numbers in 1..10"):
        read_ptbxl(ptbxl_dir, folds=[11])


def test_ptbxl_superclass_labels(ptbxl_dir):
    _, statements = load_ptbxl_metadata(ptbxl_dir)
    assert ptbxl_superclass_labels({"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}, statements) == ("NORM",)
    # any likelihood counts, as in the PTB-XL reference code; order follows the task
    assert ptbxl_superclass_labels("{'CLBBB': 100.0, 'IMI': 0.0, 'LVH': 50.0}", statements) == ("MI", "CD", "HYP")
    assert ptbxl_superclass_labels({"SR": 0.0, "PVC": 100.0}, statements) == ()


def test_ptbxl_wfdb_layout(tmp_path, ptbxl_dir):
    """PTB-XL with WFDB records (records100/00000/00001_lr) written by wfdb in the real layout."""
    import pandas as pd
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
    records = list(read_ptbxl(tmp_path))
    assert [r.record_id for r in records] == ["1", "2", "3"]
    assert records[0].lead_names == STANDARD_LEADS and records[0].units == "mV" and records[0].labels == ("NORM",)
    np.testing.assert_allclose(records[1].signal, signals[2].T, atol=1e-3)
    with pytest.raises(ECGFileNotFoundError, match="records500"):
        list(read_ptbxl(tmp_path, sampling_rate=500))


# ================================================================================================
# Chapman-Shaoxing (synthetic files in the real layout)
# ================================================================================================


def make_chapman(root: Path, rhythms: dict[str, str], n=5000, header=True) -> dict[str, np.ndarray]:
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


def test_chapman_reader(tmp_path, caplog):
    rhythms = {"MUSE_20180111_155115_19000": "SB", "MUSE_1": "AFIB", "MUSE_2": "AF", "MUSE_3": "SVT", "MUSE_4": "ST",
               "MUSE_5": "SR", "MUSE_6": "SA", "MUSE_7": "SAAWR", "MUSE_8": "XYZ", "MUSE_9": "XYZ"}
    signals = make_chapman(tmp_path, rhythms, n=600)
    with caplog.at_level(logging.WARNING, logger="tac_ecg_hf.data.readers"):
        records = list(read_chapman(tmp_path))
    assert "dropped 2 records" in caplog.text and "'XYZ': 2" in caplog.text
    by_id = {r.record_id: r for r in records}
    assert len(records) == 8
    assert [by_id[k].labels[0] for k in ["MUSE_20180111_155115_19000", "MUSE_1", "MUSE_2", "MUSE_3", "MUSE_4", "MUSE_5", "MUSE_6", "MUSE_7"]] == [
        "SB", "AFIB", "AFIB", "GSVT", "GSVT", "SR", "SR", "GSVT"]
    rec = by_id["MUSE_1"]
    assert rec.sampling_rate == 500 and rec.lead_names == STANDARD_LEADS and rec.units == "mV"
    np.testing.assert_allclose(rec.signal, signals["MUSE_1"].T / 1000, rtol=1e-5, atol=1e-6)
    assert rec.meta["PatientAge"] == 51 and rec.meta["rhythm"] == "AFIB"
    for split in ("train", "validation", "test"):
        ids = [r.record_id for r in read_chapman(tmp_path, split=split)]
        assert ids == [r.record_id for r in records if assign_split(r.record_id) == split]
    assert chapman_rhythm_group(" afib ") == "AFIB" and chapman_rhythm_group("XYZ") is None


def test_chapman_headerless_csv_and_errors(tmp_path):
    make_chapman(tmp_path, {"A": "SR"}, n=100, header=False)
    (record,) = read_chapman(tmp_path)
    assert record.lead_names == STANDARD_LEADS and record.signal.shape == (12, 100)
    (tmp_path / "ECGData" / "A.csv").unlink()
    with pytest.raises(ECGFileNotFoundError, match=r"Chapman record 'A'.*A\.csv"):
        list(read_chapman(tmp_path))
    (tmp_path / "Diagnostics.xlsx").unlink()
    with pytest.raises(ECGFileNotFoundError, match="Diagnostics.xlsx"):
        read_chapman(tmp_path)
