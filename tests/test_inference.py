"""``tac_ecg_hf.inference`` on real records with the bundled checkpoints: ``ECGTaskClassifier.predict`` /
``predict_batch``, ``Prediction``, ``decide``, ``as_record``, ``WindowPacker`` and ``set_precision("bf16")`` parity
(max |dp| <= 0.02 against fp32 for every bundled adapter)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from support.hf_repos import strict_json

from tac_ecg_hf.data import ECGRecord, read_record
from tac_ecg_hf.hub import bundled_path, bundled_repo_ids
from tac_ecg_hf.inference import (
    ECGTaskClassifier,
    Prediction,
    WindowPacker,
    as_record,
    available_tasks,
    check_threshold,
    decide,
)
from tac_ecg_hf.tasks import TASKS

MODEL = "tac-ecg/xresnet1d101-cetp"
BF16_TOLERANCE = 0.02


def task_records(data_root, task: str, n: int = 8) -> list:
    """Real records each task reads: CPSC2018 for cpsc2018, CinC 2017 for cinc2017, raw PTB-XL (HR*) for
    ptbxl-super, first ``n`` of each."""
    folder, pattern = {"cpsc2018": ("cpsc2018", "A*.hea"), "cinc2017": ("cinc2017", "A*.hea"),
                       "ptbxl-super": ("cinc2020", "HR*.hea")}.get(task, ("cpsc2018", "A*.hea"))
    paths = sorted((data_root / folder).glob(pattern))[:n]
    if not paths:
        pytest.skip(f"no {pattern} records under {data_root / folder}")
    return [read_record(p) for p in paths]


@pytest.fixture(scope="module")
def classifier():
    return ECGTaskClassifier.from_pretrained(MODEL)


def test_loads_every_bundled_adapter(classifier):
    assert classifier.tasks == available_tasks(bundled_path(MODEL)) and set(classifier.tasks) <= set(TASKS)
    assert next(classifier.model.parameters()).dtype == torch.float32 and not classifier.model.training
    with pytest.raises(ValueError, match="has no adapter for task"):
        ECGTaskClassifier.from_pretrained(MODEL, tasks=["chapman-not-a-task"])


def test_predict_batch_equals_predict_record_by_record(classifier, data_root):
    for task in classifier.tasks:
        records = task_records(data_root, task, n=5)
        # a small batch_size packs the windows of several records into one forward pass and splits others
        batched = classifier.predict_batch(records, task=task, batch_size=3)
        for record, got in zip(records, batched):
            expected = classifier.predict(record, task=task)
            assert got.record_id == expected.record_id == record.record_id
            np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-6, rtol=0)
            assert got.decision == expected.decision and got.num_windows == expected.num_windows
            assert got.notes == expected.notes


def test_prediction_fields_dict_and_text(classifier, data_root):
    record = task_records(data_root, "cpsc2018", n=1)[0]
    prediction = classifier.predict(record, task="cpsc2018")
    config = classifier.adapter_config("cpsc2018")
    assert isinstance(prediction, Prediction) and prediction.multi_label
    assert prediction.labels == list(config.labels) and prediction.probabilities.shape == (len(config.labels),)
    assert np.all((prediction.probabilities >= 0) & (prediction.probabilities <= 1))
    assert prediction.num_windows == len(classifier.feature_extractor("cpsc2018").window_starts(
        classifier.feature_extractor("cpsc2018").prepare(record).num_samples))
    assert prediction.thresholds == classifier.thresholds("cpsc2018")
    assert prediction.reference == ["RBBB"]  # A0001's header: #Dx: RBBB
    payload = strict_json(json.dumps(prediction.to_dict(), allow_nan=False))
    assert payload["record"] == record.record_id and set(payload["probabilities"]) == set(config.labels)
    text = prediction.format()
    assert record.record_id in text and all(label in text for label in config.labels)
    single = classifier.predict(task_records(data_root, "cinc2017", n=1)[0], task="cinc2017")
    assert not single.multi_label and single.thresholds == []
    assert single.decision == [single.labels[int(np.argmax(single.probabilities))]]
    assert math.isclose(float(single.probabilities.sum()), 1.0, abs_tol=1e-5)


def test_threshold_override_and_exhaustive_fallback(classifier, data_root):
    records = task_records(data_root, "cpsc2018", n=8)
    # cpsc2018 classes cover every record: never an empty decision
    assert all(p.decision for p in classifier.predict_batch(records, task="cpsc2018", threshold=0.99))
    strict = classifier.predict(records[0], task="cpsc2018", threshold=1.0)
    assert strict.decision == [strict.labels[int(np.argmax(strict.probabilities))]]
    assert any("no class reached its threshold" in note for note in strict.notes)
    everything = classifier.predict(records[0], task="cpsc2018", threshold=0.0)
    assert everything.decision == everything.labels and everything.thresholds == [0.0] * len(everything.labels)
    for bad in (1.5, -0.1, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="threshold must be a number"):
            classifier.predict(records[0], task="cpsc2018", threshold=bad)


def test_decide():
    labels, probs = ["a", "b", "c"], np.array([0.2, 0.6, 0.4])
    assert decide("cpsc2018", labels, probs, True, [0.5, 0.5, 0.5]) == (["b"], [])
    assert decide("cpsc2018", labels, probs, True, [0.1, 0.7, 0.3]) == (["a", "c"], [])
    decision, notes = decide("cpsc2018", labels, probs, True, [0.9] * 3)  # exhaustive: the most probable class
    assert decision == ["b"] and len(notes) == 1
    assert decide("some-open-task", labels, probs, True, [0.9] * 3) == ([], [])  # not exhaustive: may be empty
    assert decide("cinc2017", labels, probs, False, []) == (["b"], [])
    assert check_threshold(0) == 0.0 and check_threshold(np.float32(0.25)) == 0.25


def test_as_record_inputs(data_root):
    path = data_root / "cpsc2018" / "A0001.hea"
    record = read_record(path)
    assert as_record(record) is record
    assert as_record(str(path)).record_id == "A0001" and as_record(path).signal.shape == record.signal.shape
    leads = list(record.lead_names)
    for signal in (record.signal, torch.from_numpy(record.signal), record.signal[:, :3000].tolist()):
        made = as_record(signal, sampling_rate=500, lead_names=leads)
        assert isinstance(made, ECGRecord) and made.sampling_rate == 500.0 and list(made.lead_names) == leads
    for kwargs in ({}, {"sampling_rate": 500}, {"lead_names": leads}):
        with pytest.raises(ValueError, match="sampling_rate"):
            as_record(record.signal, **kwargs)
    with pytest.raises(ValueError, match="sampling_rate"):
        as_record(record.signal, sampling_rate=float("nan"), lead_names=leads)
    with pytest.raises(ValueError, match="come with an ECGRecord"):
        as_record(record, sampling_rate=500)
    with pytest.raises(ValueError, match="numeric"):
        as_record([["a", "b"]], sampling_rate=500, lead_names=["I"])
    with pytest.raises(TypeError, match="Cannot classify a dict"):
        as_record({"signal": record.signal})


def test_window_packer():
    packer = WindowPacker(4)
    batches = list(packer.add(np.zeros((3, 2, 5)), 0)) + list(packer.add(np.ones((6, 2, 5)), 1))
    batches += list(packer.flush())
    assert [len(w) for w, _ in batches] == [4, 4, 1]
    owners = np.concatenate([o for _, o in batches])
    assert owners.tolist() == [0] * 3 + [1] * 6
    assert np.concatenate([w for w, _ in batches])[3:].min() == 1
    with pytest.raises(ValueError):
        WindowPacker(0)


def test_set_precision_checks(classifier):
    with pytest.raises((ValueError, KeyError)):
        classifier.set_precision("fp16")
    assert classifier.set_precision("fp32") is classifier and classifier.dtype == torch.float32


@pytest.mark.parametrize("model", bundled_repo_ids())
def test_bf16_matches_fp32_for_every_bundled_adapter(model, data_root, record_property):
    """bf16 autocast (this CPU's AVX-512 BF16 / AMX units) against fp32: max |dp| <= 0.02 on real records, for each
    task adapter of each bundled checkpoint. The measured maxima are recorded as test properties."""
    fp32 = ECGTaskClassifier.from_pretrained(model)
    bf16 = ECGTaskClassifier.from_pretrained(model).set_precision("bf16")
    assert bf16.dtype == torch.bfloat16
    worst = {}
    for task in fp32.tasks:
        records = task_records(data_root, task, n=10)
        a = np.stack([p.probabilities for p in fp32.predict_batch(records, task=task)])
        b = np.stack([p.probabilities for p in bf16.predict_batch(records, task=task)])
        worst[task] = float(np.abs(a - b).max())
        record_property(f"bf16_max_abs_dp/{model}/{task}", round(worst[task], 5))
    print(f"bf16 max |dp| {model}: {worst}")
    assert max(worst.values()) > 0  # bf16 really ran
    assert all(v <= BF16_TOLERANCE for v in worst.values()), worst


def test_logits_switch_adapters_only_when_the_task_changes(tmp_path, monkeypatch):
    """PEFT's ``set_adapter`` walks every module; ``logits`` calls it when the task differs from the one it switched
    to last, or when someone switched the model behind its back, and never returns another task's logits."""
    from support.hf_repos import save_task_repo

    save_task_repo(tmp_path)
    clf = ECGTaskClassifier.from_pretrained(tmp_path)
    calls = []
    real = clf.model.set_adapter
    monkeypatch.setattr(clf.model, "set_adapter", lambda name, **kw: calls.append(name) or real(name, **kw))
    x = np.random.default_rng(0).standard_normal((3, 12, 1000)).astype(np.float32)
    first = clf.logits(x, "cpsc2018")
    assert torch.equal(clf.logits(x, "cpsc2018"), first) and calls == ["cpsc2018"]
    other = clf.logits(x, "cinc2017")
    assert calls == ["cpsc2018", "cinc2017"] and other.shape[-1] == len(clf.adapter_config("cinc2017").labels)
    real("cpsc2018")  # switched outside the classifier: the next cinc2017 batch switches back
    assert torch.equal(clf.logits(x, "cinc2017"), other) and calls[-1] == "cinc2017"
    assert torch.equal(clf.logits(x, "cpsc2018"), first) and calls == ["cpsc2018", "cinc2017", "cinc2017", "cpsc2018"]
