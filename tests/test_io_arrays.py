"""Bare .mat, .npy and .csv files (and their JSON sidecars) through tac_ecg_hf.data.io.read_record."""

from __future__ import annotations

import json
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.io
from hypothesis import given
from hypothesis import strategies as st
from test_data_readers import FUZZ

from tac_ecg_hf.data import ECGFileError, ECGFileNotFoundError, ECGInputError, ECGQualityWarning, read_record
from tac_ecg_hf.tasks import STANDARD_LEADS

# ================================================================================================================
# .mat
# ================================================================================================================


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


def test_mat_v73_garbage_and_unknown_keys(tmp_path):
    path = tmp_path / "x.mat"
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon" + b" " * 60 + b"\x00\x02IM"
    path.write_bytes(header + b"\x00" * 400)
    with pytest.raises(ECGFileError, match=r"x\.mat"):
        read_record(path, sampling_rate=500, lead_names=("I",))
    scipy.io.savemat(path, {"signal": np.zeros((2, 10))})
    with pytest.raises(ECGFileError, match=r"expected a variable 'val' .* found \['signal'\]"):
        read_record(path, sampling_rate=500, lead_names=("I", "II"))


def test_mat_size_bounds_come_from_the_variable_table(tmp_path):
    path = tmp_path / "big.mat"
    scipy.io.savemat(path, {"val": np.zeros((12, 5000), np.int16)}, do_compression=True)
    with pytest.raises(ECGInputError, match=r"'val' has shape \(12, 5000\) \(60,000 values\), more than max_values"):
        read_record(path, sampling_rate=500, gain=1000, max_values=59_999)
    with pytest.raises(ECGInputError, match="MATLAB file of .* bytes may hold"):
        read_record(path, sampling_rate=500, gain=1000, max_values=2)
    assert read_record(path, sampling_rate=500, gain=1000, max_values=60_000).num_samples == 5000


# ================================================================================================================
# .npy
# ================================================================================================================


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


def test_npy_truncated_pickled_npz_and_text(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((12, 1000)))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ECGFileError, match=r"t\.npy is not a valid \.npy file: it is truncated or corrupt"):
        read_record(path, sampling_rate=100)
    np.save(path, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ECGFileError, match="no pickle"):
        read_record(path, sampling_rate=100)
    np.savez(tmp_path / "z.npz", X=np.zeros(3))
    (tmp_path / "z.npz").rename(path)
    with pytest.raises(ECGFileError, match=r"\.npz archive"):
        read_record(path, sampling_rate=100)
    np.save(path, np.array(["I", "II"]))
    with pytest.raises(ECGFileError, match="not numeric"):
        read_record(path, sampling_rate=100)


def test_npy_shape_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((12, 100_000), np.float32))
    tracemalloc.start()
    try:
        with pytest.raises(ECGInputError, match=r"\(12, 100000\) \(1,200,000 values\), more than max_values=1,000"):
            read_record(path, sampling_rate=500, max_values=1000)
        assert tracemalloc.get_traced_memory()[1] < 2**20  # the 4.8 MB array was never read
    finally:
        tracemalloc.stop()


def test_nan_samples_are_kept_and_negative_gain_warns(tmp_path):
    signal = np.ones((12, 100), np.float32)
    signal[3, 7] = np.nan
    path = tmp_path / "n.npy"
    np.save(path, signal)
    record = read_record(path, sampling_rate=100)
    assert np.isnan(record.signal[3, 7]) and np.isnan(record.signal).sum() == 1
    with pytest.warns(ECGQualityWarning, match=r"n\.npy: gain -2 is negative"):
        record = read_record(path, sampling_rate=100, gain=-2)
    assert record.signal[0, 0] == -0.5
    with pytest.raises(ECGInputError, match="gain must be a finite non-zero number"):
        read_record(path, sampling_rate=100, gain=0)


# ================================================================================================================
# .csv
# ================================================================================================================


def test_csv_with_header_and_time_column(tmp_path):
    signal = np.random.default_rng(1).standard_normal((300, 3))
    path = tmp_path / "rec.csv"
    lines = ["Time (s),I,AVL,v2"] + [f"{i / 100:.2f}," + ",".join(f"{v:.6f}" for v in r) for i, r in enumerate(signal)]
    path.write_text("\n".join(lines) + "\n")
    record = read_record(path, sampling_rate=100)
    assert record.lead_names == ("I", "aVL", "V2") and record.signal.shape == (3, 300)
    np.testing.assert_allclose(record.signal, signal.T, atol=1e-5)
    with pytest.raises(ECGInputError, match="sampling_rate"):
        read_record(path)
    lines[5] = lines[5].rsplit(",", 1)[0] + ",abc"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ECGFileError, match=r"data row 5, column 'v2': 'abc' is not a number"):
        read_record(path, sampling_rate=100)


def test_csv_headerless_blank_cells_and_truncation(tmp_path):
    rows = np.arange(36, dtype=float).reshape(3, 12)
    path = tmp_path / "h.csv"
    path.write_text("\n".join(",".join(f"{v:g}" for v in row) for row in rows) + "\n")
    record = read_record(path, sampling_rate=500)
    assert record.lead_names == STANDARD_LEADS
    np.testing.assert_array_equal(record.signal, rows.T)
    path.write_text("I,II\n1,2\n3,\nnan,4\n")  # blank and 'nan' cells are NaN samples
    record = read_record(path, sampling_rate=500)
    assert np.isnan(record.signal).sum() == 2 and record.signal[0, 0] == 1
    path.write_text("I,II\n1,2\n3,4\n5")  # cut in the middle of the last row
    with pytest.raises(ECGFileError, match=r"ends in the middle of a row \(data row 3\); the file is truncated"):
        read_record(path, sampling_rate=500)
    path.write_text("I,II\n1,2\n3,4,5\n")
    with pytest.raises(ECGFileError, match=r"h\.csv is not a valid CSV file .*Expected 2 fields"):
        read_record(path, sampling_rate=500)
    path.write_text("")
    with pytest.raises(ECGFileError, match="is empty"):
        read_record(path, sampling_rate=500)
    path.write_text("I,II\n")
    with pytest.raises(ECGFileError, match="header row but no samples"):
        read_record(path, sampling_rate=500)


def test_csv_file_size_cap(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("I,II\n" + "1,2\n" * 100)
    with pytest.raises(ECGInputError, match=r"a CSV file of 405 bytes may hold 202 values, more than max_values=100"):
        read_record(path, sampling_rate=500, max_values=100)
    assert read_record(path, sampling_rate=500, max_values=203).num_samples == 100


def test_read_record_unknown_paths(tmp_path):
    with pytest.raises(ECGFileNotFoundError, match="tried"):
        read_record(tmp_path / "missing")
    (tmp_path / "x.edf").write_bytes(b"0")
    with pytest.raises(ECGFileError, match="unsupported file type"):
        read_record(tmp_path / "x.edf")
    (tmp_path / "y.dat").write_bytes(b"\x00\x00")
    with pytest.raises(ECGFileError, match=r"needs its header y\.hea"):
        read_record(tmp_path / "y.dat")


def test_sidecar_errors(tmp_path):
    path = tmp_path / "s.npy"
    np.save(path, np.zeros((12, 100)))
    (tmp_path / "s.json").write_text(json.dumps({"sampling_rate": "fast"}))
    with pytest.raises(ECGFileError, match=r"'sampling_rate' must be a number of Hz"):
        read_record(path)
    (tmp_path / "s.json").write_text(json.dumps({"fs": 500}))
    with pytest.raises(ECGFileError, match=r"unknown keys \['fs'\]"):
        read_record(path)
    (tmp_path / "s.json").write_text("{")
    with pytest.raises(ECGFileError, match="not valid JSON"):
        read_record(path)


@FUZZ
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(
            st.sampled_from(["sampling_rate", "lead_names", "units", "gain", "baseline", "layout", "labels", "x"]),
            children,
            max_size=4,
        ),
        max_leaves=10,
    )
)
def test_fuzz_npy_sidecar(tmp_path_factory, payload):
    """Any JSON sidecar next to a valid .npy gives a record or an ECGInputError, never another exception."""
    root = tmp_path_factory.getbasetemp() / "fuzz_sidecar"
    root.mkdir(exist_ok=True)
    path = root / "side.npy"
    if not path.exists():
        np.save(path, np.random.default_rng(0).standard_normal((12, 200)).astype(np.float32))
    (root / "side.json").write_text(json.dumps(payload))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ECGQualityWarning)  # negative gains
            record = read_record(path)
    except ECGInputError:
        return
    assert np.isfinite(record.sampling_rate) and record.sampling_rate > 0 and record.signal.dtype == np.float32
