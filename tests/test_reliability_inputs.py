"""Bad or unusual ECG input through the Python API (``ECGTaskClassifier.predict``) on a tiny model: lead order,
windows, input types, thresholds, short records, lead subsets, and bounded memory for long records. What the
feature extractor and the readers do on their own is tested in test_feature_extraction.py and test_io_*.py; the same
cases through the CLI on the bundled model are in test_reliability_cases.py."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from tac_ecg_hf.data import ECGInputError, ECGRecord, read_record
from tac_ecg_hf.errors import InvalidArgumentError
from tac_ecg_hf.inference import ECGTaskClassifier


@pytest.fixture(scope="module")
def classifier(tiny_repo):
    return ECGTaskClassifier.from_pretrained(tiny_repo)


@pytest.fixture(scope="module")
def a0001(cpsc2018_dir) -> ECGRecord:
    return read_record(cpsc2018_dir / "A0001.hea")  # 12 leads, 500 Hz, 15 s


def _write_cinc2020_record(directory, rid: str, val: np.ndarray, names, fs=500, gain=1000, dx="RBBB"):
    """A PhysioNet/CinC 2020 style record (int16 'val' in a MAT v4 file + header), one header line per row."""
    scipy.io.savemat(directory / f"{rid}.mat", {"val": val.astype(np.int16)}, format="4")
    lines = [f"{rid} {len(names)} {fs} {val.shape[1]} 05-Feb-2020 11:39:16"]
    for row, name in zip(val.astype(np.int64), names):
        checksum = int(row.sum()) & 0xFFFF
        checksum = checksum - 0x10000 if checksum >= 0x8000 else checksum
        lines.append(f"{rid}.mat 16+24 {gain}/mV 16 0 {row[0]} {checksum} 0 {name}")
    lines += [f"#Dx: {dx}"]
    (directory / f"{rid}.hea").write_text("\n".join(lines) + "\n")
    return directory / f"{rid}.hea"


def test_wrong_lead_order_gives_the_same_probabilities(classifier, a0001, cpsc2018_dir, tmp_path):
    """A record whose leads are stored in another order (aVL/aVF swapped, chest leads reversed) is reordered by name:
    the prediction is identical to the one on the correctly ordered file."""
    reference = classifier.predict(cpsc2018_dir / "A0001.hea", task="cpsc2018")
    val = scipy.io.loadmat(cpsc2018_dir / "A0001.mat")["val"]
    order = [0, 1, 2, 3, 5, 4, 11, 10, 9, 8, 7, 6]  # I II III aVR aVF aVL V6 V5 V4 V3 V2 V1
    hea = _write_cinc2020_record(tmp_path, "A0001", val[order], [a0001.lead_names[i] for i in order])
    assert read_record(hea).lead_names[4:6] == ("aVF", "aVL")
    np.testing.assert_array_equal(classifier.predict(hea, task="cpsc2018").probabilities, reference.probabilities)
    # an array with the lead names in reversed order, spelled in upper case
    names = [n.upper() for n in a0001.lead_names[::-1]]
    array = classifier.predict(a0001.signal[::-1].copy(), task="cpsc2018", sampling_rate=500, lead_names=names)
    np.testing.assert_array_equal(array.probabilities, reference.probabilities)


def test_long_record_is_windowed_and_averaged(classifier, a0001):
    """15 s at 500 Hz -> 1500 samples at 100 Hz -> windows [0, 1000) and the end-aligned [500, 1500), averaged."""
    prediction = classifier.predict(a0001, task="cpsc2018")
    assert prediction.num_windows == 2
    fe = classifier.feature_extractor("cpsc2018")
    windows = np.concatenate(list(fe.iter_windows(fe.prepare(a0001))))
    assert windows.shape == (2, 12, 1000)
    classifier.model.set_adapter("cpsc2018")
    with torch.no_grad():
        expected = torch.sigmoid(classifier.model(input_values=torch.from_numpy(windows)).logits).mean(0).numpy()
    np.testing.assert_allclose(prediction.probabilities, expected, rtol=1e-5, atol=1e-7)
    # the windows may be streamed in batches of one: the same average
    np.testing.assert_allclose(classifier.predict(a0001, task="cpsc2018", batch_size=1).probabilities,
                               prediction.probabilities, rtol=1e-5, atol=1e-7)


def test_array_tensor_list_and_record_inputs_agree(classifier, a0001):
    """A numpy array, a torch tensor and a nested list with sampling_rate/lead_names predict as the record does."""
    reference = classifier.predict(a0001, task="cpsc2018").probabilities
    kwargs = dict(task="cpsc2018", sampling_rate=500, lead_names=list(a0001.lead_names))
    for value in (a0001.signal, torch.from_numpy(a0001.signal), a0001.signal.tolist()):
        np.testing.assert_allclose(classifier.predict(value, **kwargs).probabilities, reference, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        classifier.predict_batch([a0001, a0001], task="cpsc2018")[1].probabilities, reference, rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize(
    "value, kwargs, error, match",
    [
        ([[1.0, 2.0], [3.0]], dict(sampling_rate=500, lead_names=["I", "II"]), ECGInputError, "numeric"),
        (np.zeros((12, 5000)), {}, ECGInputError, "needs sampling_rate"),
        (np.zeros((12, 5000)), dict(sampling_rate=float("nan"), lead_names=list("ABCDEFGHIJKL")), ECGInputError,
         "sampling_rate must be a number"),
        ({"signal": [1, 2]}, {}, TypeError, "Cannot classify a dict"),
    ],
    ids=["ragged-list", "array-without-rate", "nan-rate", "dict"],
)
def test_bad_python_inputs_are_refused(classifier, value, kwargs, error, match):
    with pytest.raises(error, match=match):
        classifier.predict(value, task="cpsc2018", **kwargs)


def test_record_with_extra_sampling_rate_is_refused(classifier, a0001):
    with pytest.raises(InvalidArgumentError, match="come with an ECGRecord"):
        classifier.predict(a0001, task="cpsc2018", sampling_rate=500)


@pytest.mark.parametrize("threshold", [float("nan"), -1, 1.5, float("inf"), True, "0.5"])
def test_threshold_outside_zero_one_is_refused(classifier, a0001, threshold):
    with pytest.raises(InvalidArgumentError, match=r"threshold must be a number in \[0, 1\]"):
        classifier.predict(a0001, task="cpsc2018", threshold=threshold)
    with pytest.raises(InvalidArgumentError):
        classifier.predict_batch([a0001], task="cpsc2018", threshold=threshold)


def test_thresholds_at_the_ends_and_the_exhaustive_fallback(classifier, a0001):
    everything = classifier.predict(a0001, task="cpsc2018", threshold=0.0)
    assert everything.decision == everything.labels and everything.thresholds == [0.0] * 9
    nothing = classifier.predict(a0001, task="cpsc2018", threshold=1.0)
    best = nothing.labels[int(np.argmax(nothing.probabilities))]
    assert nothing.decision == [best]  # cpsc2018 classes cover every record: never an empty decision
    assert any("decided the most probable class" in n for n in nothing.notes)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_batch_size_must_be_a_positive_integer(classifier, a0001, batch_size):
    with pytest.raises(InvalidArgumentError, match="batch_size must be a positive integer"):
        classifier.predict(a0001, task="cpsc2018", batch_size=batch_size)


def test_unknown_task_and_missing_adapter(classifier, tiny_repo, a0001):
    with pytest.raises(InvalidArgumentError, match=r"No adapter for task 'ptbxl-super'"):
        classifier.predict(a0001, task="ptbxl-super")
    with pytest.raises(InvalidArgumentError, match=r"has no adapter for task\(s\) \['chapman'\]"):
        ECGTaskClassifier.from_pretrained(tiny_repo, tasks=["chapman"])


def test_short_records_are_refused_or_padded_with_a_note(classifier, a0001):
    one_second = ECGRecord(a0001.signal[:, :500], 500, a0001.lead_names, "one-second")
    with pytest.raises(ECGInputError, match=r"one-second: 1\.00 s long, shorter than the 5 s minimum"):
        classifier.predict(one_second, task="cpsc2018")
    seven = classifier.predict(ECGRecord(a0001.signal[:, :3500], 500, a0001.lead_names, "seven"), task="cpsc2018")
    assert seven.num_windows == 1
    assert "record is 7.0 s, shorter than the model's 10 s window: padded with 3.0 s of zeros" in seven.notes


def test_single_lead_task_uses_lead_i_of_a_twelve_lead_record(classifier, a0001):
    twelve = classifier.predict(a0001, task="cinc2017")
    assert any("reads only lead(s) ['I']; ignored 11 other lead(s)" in n for n in twelve.notes)
    lead_i = classifier.predict(ECGRecord(a0001.signal[:1], 500, ("I",), "lead-I"), task="cinc2017")
    np.testing.assert_array_equal(twelve.probabilities, lead_i.probabilities)
    single = classifier.predict(ECGRecord(a0001.signal[:1], 500, ("ECG",), "ecg"), task="cinc2017")
    assert "the single lead 'ECG' was read as lead I" in single.notes


def test_missing_leads_nan_and_flat_leads(classifier, a0001):
    chest = ECGRecord(a0001.signal[6:], 500, a0001.lead_names[6:], "chest-only")
    with pytest.raises(ECGInputError, match=r"chest-only: lead I is missing"):
        classifier.predict(chest, task="cpsc2018")
    limb = ECGRecord(np.delete(a0001.signal, 2, axis=0), 500, [n for n in a0001.lead_names if n != "III"], "no-III")
    derived = classifier.predict(limb, task="cpsc2018")
    assert any("derived missing limb lead(s)" in n and "III" in n for n in derived.notes)
    nan = a0001.signal.copy()
    nan[4, 100:110] = np.nan
    with pytest.raises(ECGInputError, match=r"non-finite samples \(NaN/inf\) in 1 lead\(s\) \(row 4: 10\)"):
        classifier.predict(ECGRecord(nan, 500, a0001.lead_names, "A0001"), task="cpsc2018")
    flat = a0001.signal.copy()
    flat[7] = 0.25
    assert "1 flat lead(s) (no signal); they are zero after normalisation" in classifier.predict(
        ECGRecord(flat, 500, a0001.lead_names, "flat"), task="cpsc2018").notes


def test_long_records_stream_in_bounded_batches(capped_runner, bundled_xresnet, cpsc2018_dir):
    """Peak memory does not grow with the number of windows: an hour of 12-lead ECG (360 windows through
    xresnet1d101, whose activations for all windows at once would take gigabytes) peaks within a few hundred MB of a
    15-second record, in a child capped at 6 GB."""
    capped_runner.warm_up(bundled_xresnet, cpsc2018_dir / "A0001.hea", "cpsc2018")
    short = capped_runner.call("predict_synthetic", model=str(bundled_xresnet), seconds=15)
    long = capped_runner.call("predict_synthetic", model=str(bundled_xresnet), seconds=3600)
    for result in (short, long):
        assert result.exit_code == 0 and not result.timed_out, result.describe()
    assert short.value["windows"] == 2 and long.value["windows"] == 360
    print(f"peak RSS: 15 s {short.max_rss_mb:.0f} MB, 1 h {long.max_rss_mb:.0f} MB")
    assert long.max_rss_mb - short.max_rss_mb < 500, (short.max_rss_mb, long.max_rss_mb)
