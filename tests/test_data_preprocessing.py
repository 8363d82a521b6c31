"""Unit tests of tac_ecg_hf.data.record and tac_ecg_hf.data.preprocessing."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from tac_ecg_hf.data import (
    ECGInputError,
    ECGPreprocessor,
    ECGQualityWarning,
    ECGRecord,
    ECGResamplingWarning,
    canonical_lead_name,
    check_signal,
    crop_or_pad,
    encode_labels,
    normalize_per_lead,
    reorder_leads,
    resample,
)
from tac_ecg_hf.tasks import STANDARD_LEADS


def _dominant_frequency(x: np.ndarray, fs: float) -> float:
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    return float(np.fft.rfftfreq(x.size, 1.0 / fs)[np.argmax(spectrum)])


def _record(n_samples=5000, fs=500.0, leads=STANDARD_LEADS, seed=0, rid="rec-1"):
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / fs
    signal = np.stack([np.sin(2 * np.pi * (1 + i) * t) + 0.1 * rng.standard_normal(n_samples) for i in range(len(leads))])
    return ECGRecord(signal=signal, sampling_rate=fs, lead_names=tuple(leads), record_id=rid)


# -- ECGRecord ------------------------------------------------------------------------------------


def test_record_coerces_and_validates():
    rec = ECGRecord(signal=np.zeros((2, 10), dtype=np.int16), sampling_rate=250, lead_names=["I", "II"], record_id=7)
    assert rec.signal.dtype == np.float32 and rec.lead_names == ("I", "II") and rec.record_id == "7"
    assert rec.duration == pytest.approx(0.04) and rec.meta == {} and rec.units == "mV"
    with pytest.raises(ECGInputError, match="3 signal rows but 2 lead names"):
        ECGRecord(np.zeros((3, 10)), 100, ("I", "II"), "bad")
    with pytest.raises(ECGInputError, match="sampling_rate"):
        ECGRecord(np.zeros((1, 10)), 0, ("I",), "bad")
    with pytest.raises(ECGInputError, match=r"shape \(leads, samples\)"):
        ECGRecord(np.zeros((1, 2, 3)), 100, ("I",), "bad")
    assert "signal=" not in repr(rec)


def test_encode_labels():
    np.testing.assert_array_equal(encode_labels(("AF", "RBBB"), "cpsc2018"), [0, 1, 0, 0, 1, 0, 0, 0, 0])
    assert encode_labels(("O",), "cinc2017") == 2
    with pytest.raises(ECGInputError, match="not in task 'cinc2017'"):
        encode_labels(("X",), "cinc2017", "A1")
    with pytest.raises(ECGInputError, match="single-label"):
        encode_labels(("N", "A"), "cinc2017", "A1")


# -- lead names and order -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [("AVL", "aVL"), ("avf", "aVF"), ("aVR", "aVR"), ("v1", "V1"), (" V6 ", "V6"), ("MLII", "II"),
     ("Lead II", "II"), ("lead_iii", "III"), ("i", "I"), ("ECG", "ECG"), ("lead1", "lead1"), ("V7", "V7"), ("foo", "foo")],
)
def test_canonical_lead_name(raw, expected):
    assert canonical_lead_name(raw) == expected


def test_canonical_lead_name_single_lead_only_when_told():
    assert canonical_lead_name("ECG", single_lead=True) == "I"
    assert canonical_lead_name("lead1", single_lead=True) == "I"
    assert canonical_lead_name("V2", single_lead=True) == "V2"
    with pytest.raises(ECGInputError):
        canonical_lead_name(3)


def test_reorder_leads_shuffled_leads_come_back_in_order():
    rng = np.random.default_rng(1)
    ordered = np.arange(12)[:, None] * np.ones((12, 50), dtype=np.float32)
    perm = rng.permutation(12)
    shuffled_names = [STANDARD_LEADS[i].upper() for i in perm]  # also exercises 'AVL' -> 'aVL'
    out = reorder_leads(ordered[perm], shuffled_names, STANDARD_LEADS, "shuffled")
    np.testing.assert_array_equal(out, ordered)
    assert out.dtype == np.float32


def test_reorder_leads_errors_list_leads_and_expected_order():
    signal = np.zeros((12, 10))
    names = list(STANDARD_LEADS[:11]) + ["V7"]
    with pytest.raises(ECGInputError) as err:
        reorder_leads(signal, names, STANDARD_LEADS, "rec-9")
    message = str(err.value)
    assert "rec-9" in message and "'V7'" in message and "['V6'] are missing" in message
    assert str(list(STANDARD_LEADS)) in message and "fill_missing=True" in message
    with pytest.raises(ECGInputError, match="duplicate lead names"):
        reorder_leads(np.zeros((2, 5)), ["I", "i"], ("I", "II"), "dup")
    with pytest.raises(ECGInputError, match=r"single_lead=True"):
        reorder_leads(np.zeros((1, 5)), ["ECG"], STANDARD_LEADS, "one", fill_missing=True)


def test_reorder_leads_fill_missing_and_ignore_extra():
    signal = np.vstack([np.full(5, 2.0), np.full(5, 3.0), np.full(5, 9.0)])
    out, mask = reorder_leads(signal, ["V2", "I", "V9"], STANDARD_LEADS, "partial", fill_missing=True, ignore_extra=True)
    assert out.shape == (12, 5)
    assert mask.tolist() == [name in ("I", "V2") for name in STANDARD_LEADS]
    np.testing.assert_array_equal(out[0], 3.0)
    np.testing.assert_array_equal(out[7], 2.0)
    assert not out[~mask].any()


# -- resampling -----------------------------------------------------------------------------------


def test_resample_keeps_sine_frequency_and_warns():
    fs_in, seconds = 500, 10
    t = np.arange(fs_in * seconds) / fs_in
    x = np.sin(2 * np.pi * 10 * t)[None, :]
    with pytest.warns(ECGResamplingWarning, match="resampled from 500 Hz to 100 Hz"):
        y = resample(x, 500, 100)
    assert y.shape == (1, 1000) and y.dtype == np.float32
    assert _dominant_frequency(y[0], 100) == pytest.approx(10.0, abs=0.1)
    np.testing.assert_allclose(y[0, 100:-100], np.sin(2 * np.pi * 10 * np.arange(1000) / 100)[100:-100], atol=0.02)


def test_resample_rational_and_noop():
    x = np.random.default_rng(0).standard_normal((2, 3000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # equal rates: no warning
        same = resample(x, 300, 300)
    np.testing.assert_allclose(same, x.astype(np.float32))
    with pytest.warns(ECGResamplingWarning):
        assert resample(x, 300, 100).shape == (2, 1000)
    with pytest.warns(ECGResamplingWarning):
        assert resample(x, 257, 100).shape == (2, int(np.ceil(3000 * 100 / 257)))
    with pytest.raises(ECGInputError, match="fs_in"):
        resample(x, -1, 100)


# -- quality checks -------------------------------------------------------------------------------


def test_check_signal_nan_error_names_leads_and_counts():
    x = np.random.default_rng(0).standard_normal((3, 100))
    x[1, :7] = np.nan
    x[2, 3] = np.inf
    with pytest.raises(ECGInputError) as err:
        check_signal(x, "A0042", ["I", "II", "V1"])
    message = str(err.value)
    assert "A0042" in message and "II (7 NaN)" in message and "V1 (1 +inf)" in message and "'I" not in message


def test_check_signal_flat_and_clipped_leads_warn():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1000))
    x[0] = 0.5  # flat
    x[2] = np.clip(x[2], -1.0, 1.0)  # ~30% of samples at the rails
    with pytest.warns(ECGQualityWarning) as record:
        quality = check_signal(x, "rec-flat", ["I", "II", "III"])
    assert quality.flat_leads == ("I",) and quality.clipped_leads == ("III",) and not quality.ok
    messages = " ".join(str(w.message) for w in record)
    assert "flat lead(s) ['I']" in messages and "clipped lead(s) ['III']" in messages and "rec-flat" in messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_signal(rng.standard_normal((2, 500)), "ok").ok
    with pytest.raises(ECGInputError, match="empty signal"):
        check_signal(np.zeros((12, 0)), "empty")


# -- normalisation and cropping -------------------------------------------------------------------


def test_normalize_per_lead():
    x = np.vstack([np.arange(10, dtype=float) * 3 + 5, np.full(10, 4.0)])
    out = normalize_per_lead(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(out[0].std(), 1, atol=1e-5)
    np.testing.assert_array_equal(out[1], 0.0)


def test_crop_or_pad_modes():
    x = np.arange(10, dtype=float)[None, :]
    np.testing.assert_array_equal(crop_or_pad(x, 4, "start"), [[0, 1, 2, 3]])
    np.testing.assert_array_equal(crop_or_pad(x, 4, "center"), [[3, 4, 5, 6]])
    a = crop_or_pad(x, 4, "random", rng=np.random.default_rng(3))
    b = crop_or_pad(x, 4, "random", rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a[0, 1] - a[0, 0] == 1
    np.testing.assert_array_equal(crop_or_pad(x, 12), [list(range(10)) + [0, 0]])
    with pytest.raises(ECGInputError, match="too short"):
        crop_or_pad(x, 100, min_fraction=0.5, record_id="short")
    with pytest.raises(ValueError, match="crop mode"):
        crop_or_pad(x, 4, "middle")


# -- ECGPreprocessor ------------------------------------------------------------------------------


def test_preprocessor_full_pipeline_shuffled_500hz():
    rec = _record(n_samples=6000, fs=500.0)
    perm = np.random.default_rng(2).permutation(12)
    shuffled = ECGRecord(rec.signal[perm], 500.0, tuple(rec.lead_names[i] for i in perm), "shuf")
    pre = ECGPreprocessor()
    with pytest.warns(ECGResamplingWarning):
        out = pre(shuffled)
    with pytest.warns(ECGResamplingWarning):
        ref = pre(rec)
    assert out.shape == (12, 1000) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-3)
    # lead k of the input carries a (k+1) Hz sine: check lead order survived the pipeline
    assert [round(_dominant_frequency(out[k], 100)) for k in range(3)] == [1, 2, 3]


def test_preprocessor_single_lead_fill_missing():
    rec = ECGRecord(np.sin(np.linspace(0, 60, 2700))[None, :], 300, ("I",), "A00001")
    with pytest.raises(ECGInputError, match="missing"):
        ECGPreprocessor()(rec)
    with pytest.warns(ECGResamplingWarning):
        out, mask = ECGPreprocessor(fill_missing_leads=True).process(rec)
    assert out.shape == (12, 1000) and mask.sum() == 1 and mask[0]
    assert np.abs(out[0, :900]).max() > 0 and not out[1:].any()  # 9 s at 100 Hz, then zero padding


def test_preprocessor_windows_cover_long_record():
    rec = _record(n_samples=12500, fs=500.0)  # 25 s
    pre = ECGPreprocessor()
    with pytest.warns(ECGResamplingWarning):
        windows, starts = pre.windows(rec, return_starts=True)
    assert windows.shape == (3, 12, 1000) and starts.tolist() == [0, 1000, 1500]
    with pytest.warns(ECGResamplingWarning):
        overlapping = pre.windows(rec, stride=500)
    assert overlapping.shape == (4, 12, 1000)
    with pytest.warns(ECGResamplingWarning):
        short = pre.windows(_record(n_samples=2000, fs=500.0))
    assert short.shape == (1, 12, 1000)


def test_preprocessor_dict_round_trip_and_validation():
    pre = ECGPreprocessor(sampling_rate=250, num_samples=2500, crop="random", fill_missing_leads=True, seed=3)
    settings = json.loads(json.dumps(pre.to_dict()))
    assert settings["target_leads"] == list(STANDARD_LEADS)
    assert ECGPreprocessor.from_dict(settings) == pre
    assert ECGPreprocessor.from_dict({}) == ECGPreprocessor()
    with pytest.raises(ValueError, match="Unknown ECGPreprocessor settings"):
        ECGPreprocessor.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="crop"):
        ECGPreprocessor(crop="middle")
    with pytest.raises(ValueError, match="duplicates"):
        ECGPreprocessor(target_leads=("I", "i"))


def test_preprocessor_rejects_nan_record():
    rec = _record(n_samples=1000, fs=100.0)
    rec.signal[4, 10:20] = np.nan
    with pytest.raises(ECGInputError, match=r"rec-1.*aVL \(10 NaN\)"):
        ECGPreprocessor()(rec)
