"""transformers pipelines on real records: ``ecg-classification`` with the bundled checkpoint (offline, from an
empty HF_HOME seeded as the README's set-up does with ``tac-ecg seed-cache``) and ``zero-shot-ecg-classification``
with a tiny CETP repo built on the offline all-MiniLM-L6-v2 (no CETP is bundled yet); ``tac-ecg zero-shot``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.io import savemat
from support.hf_repos import save_cetp_repo
from transformers import AutoFeatureExtractor, AutoProcessor, pipeline

from tac_ecg_hf.cli import main
from tac_ecg_hf.data import read_record
from tac_ecg_hf.data.feature_extraction_ecg import ECGFeatureExtractor
from tac_ecg_hf.hub import bundled_path
from tac_ecg_hf.inference import ECGTaskClassifier, decide

MODEL = "tac-ecg/xresnet1d101-cetp"
TASK = "cpsc2018"
RECORDS = ["A0001", "A0002", "A0005", "A0006", "A0007"]


@pytest.fixture(scope="module")
def classify(offline_home):
    return pipeline("ecg-classification", model=MODEL, adapter=TASK)


@pytest.fixture(scope="module")
def classifier(offline_home):
    return ECGTaskClassifier.from_pretrained(MODEL, tasks=[TASK])


@pytest.fixture(scope="module")
def records(cpsc2018_dir):
    return [read_record(cpsc2018_dir / f"{rid}.hea") for rid in RECORDS]


def scores(result: list[dict]) -> dict[str, float]:
    return {item["label"]: item["score"] for item in result}


def assert_same_scores(a: list[dict], b: list[dict], atol: float = 1e-6, what: str = "") -> None:
    sa, sb = scores(a), scores(b)
    assert sa.keys() == sb.keys(), what
    np.testing.assert_allclose([sa[k] for k in sa], [sb[k] for k in sa], atol=atol, rtol=0, err_msg=what)


# ----------------------------------------------------------------------------------------------------------------
# ecg-classification


def test_result_format_and_same_probabilities_as_ecg_task_classifier(classify, classifier, records):
    for record in records:
        result = classify(record)
        assert [set(item) for item in result] == [{"label", "score"}] * len(result)  # a 10-60 s record: no notes
        got = [item["score"] for item in result]
        assert got == sorted(got, reverse=True)
        prediction = classifier.predict(record, task=TASK)
        order = np.argsort(-prediction.probabilities, kind="stable")
        assert [item["label"] for item in result] == [prediction.labels[i] for i in order]
        np.testing.assert_allclose(got, np.sort(prediction.probabilities)[::-1], atol=1e-6, rtol=0)


def test_every_input_form_gives_the_same_scores(classify, records, cpsc2018_dir, tmp_path):
    record = records[0]
    signal, fs, leads = record.signal, record.sampling_rate, list(record.lead_names)
    np.save(tmp_path / "A0001.npy", signal)
    (tmp_path / "A0001.json").write_text(json.dumps({"sampling_rate": fs, "lead_names": leads}))
    pd.DataFrame(signal.T, columns=leads).to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "table.json").write_text(json.dumps({"sampling_rate": fs}))
    savemat(tmp_path / "bare.mat", {"val": signal.astype(np.float64)})  # a bare .mat in mV, settings in the sidecar
    (tmp_path / "bare.json").write_text(json.dumps({"sampling_rate": fs, "lead_names": leads, "units": "mV"}))
    reference = classify(str(cpsc2018_dir / "A0001.hea"))
    inputs = {
        "wfdb .mat": str(cpsc2018_dir / "A0001.mat"),
        "bare .mat": str(tmp_path / "bare.mat"),
        ".npy": str(tmp_path / "A0001.npy"),
        ".csv": str(tmp_path / "table.csv"),
        "ECGRecord": record,
        "dict": {"signal": signal, "sampling_rate": fs, "lead_names": leads},
    }
    for name, item in inputs.items():
        assert_same_scores(classify(item), reference, atol=1e-5, what=name)
    assert_same_scores(classify(signal, sampling_rate=fs, lead_names=leads), reference, atol=1e-5)
    assert_same_scores(classify(torch.from_numpy(signal), sampling_rate=fs, lead_names=leads), reference, atol=1e-5)


def test_a_list_is_batched_with_the_same_scores_as_one_by_one(classify, records):
    one_by_one = [classify(record) for record in records]
    batched = classify(records, batch_size=4)
    assert len(batched) == len(records)
    for got, expected in zip(batched, one_by_one):
        assert_same_scores(got, expected)
        assert [item["label"] for item in got] == [item["label"] for item in expected]


def test_top_k_and_thresholds(classify, classifier, records):
    record = records[0]
    full = classify(record)
    assert classify(record, top_k=3) == full[:3]
    cut = float(np.median([item["score"] for item in full]))
    above = classify(record, threshold=cut)
    assert above == [item for item in full if item["score"] >= cut] and 0 < len(above) < len(full)
    assert classify(record, threshold=cut, top_k=1) == above[:1]
    calibrated = classify(record, thresholds="calibrated")
    prediction = classifier.predict(record, task=TASK)
    expected, _ = decide(TASK, prediction.labels, prediction.probabilities, True, classifier.thresholds(TASK))
    assert [item["label"] for item in calibrated] == [item["label"] for item in full if item["label"] in expected]
    bad_arguments = ({"threshold": 1.5}, {"threshold": float("nan")}, {"thresholds": "optimal"}, {"adapter": "x"})
    for bad in bad_arguments:
        with pytest.raises(ValueError):
            classify(record, **bad)


def test_a_padded_record_carries_the_notes(classify, records):
    record = records[0]
    short = record.signal[:, : int(7 * record.sampling_rate)]  # 7 s: padded to the model's 10 s window
    result = classify(short, sampling_rate=record.sampling_rate, lead_names=list(record.lead_names))
    notes = result[0]["notes"]
    assert any("7.0 s" in note and "padded" in note for note in notes)
    assert all(item["notes"] == notes for item in result)


def test_local_folder_and_a_model_already_wrapped(classify, records, offline_home):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    folder = bundled_path(MODEL)
    record = records[1]
    reference = classify(record)
    by_folder = pipeline("ecg-classification", model=str(folder), adapter=TASK)
    assert_same_scores(by_folder(record), reference)
    base = AutoModelForSequenceClassification.from_pretrained(MODEL)
    wrapped = PeftModel.from_pretrained(base, str(folder / TASK), adapter_name=TASK)
    assert next(wrapped.parameters()).dtype == torch.float32
    assert_same_scores(pipeline("ecg-classification", model=wrapped)(record), reference)


def test_a_model_object_without_a_folder_needs_its_feature_extractor(records):
    from support.repos import tiny_classifier, with_task_adapters

    model = with_task_adapters(tiny_classifier(), tasks=("cpsc2018",))  # built in memory: no folder to read from
    with pytest.raises(ValueError, match="needs the model's feature extractor"):
        pipeline("ecg-classification", model=model)
    fe = ECGFeatureExtractor()
    result = pipeline("ecg-classification", model=model, feature_extractor=fe)(records[0])
    windows = torch.from_numpy(fe(records[0])["input_values"])
    with torch.no_grad():
        expected = torch.sigmoid(model(input_values=windows).logits).mean(0).numpy()
    labels = list(model.peft_config["cpsc2018"].labels)
    np.testing.assert_allclose([scores(result)[label] for label in labels], expected, atol=1e-6, rtol=0)


def test_auto_feature_extractor_and_auto_processor(offline_home):
    fe = AutoFeatureExtractor.from_pretrained(MODEL)
    assert isinstance(fe, ECGFeatureExtractor)
    assert fe.to_dict() == ECGFeatureExtractor.from_pretrained(bundled_path(MODEL)).to_dict()
    single = AutoFeatureExtractor.from_pretrained(MODEL, subfolder="cinc2017")
    assert single.input_leads == ["I"]
    # a repo with a feature extractor and no processor: AutoProcessor hands back the feature extractor (transformers'
    # fallback, as for audio models without a tokenizer); nothing needs registering with AutoProcessor
    processor = AutoProcessor.from_pretrained(MODEL)
    assert isinstance(processor, ECGFeatureExtractor) and processor.to_dict() == fe.to_dict()


# ----------------------------------------------------------------------------------------------------------------
# zero-shot


LABELS = ["normal ECG", "atrial fibrillation", "right bundle branch block", "left bundle branch block"]


@pytest.fixture(scope="module")
def cetp_repo(tmp_path_factory, offline_home):
    folder = tmp_path_factory.mktemp("cetp_repo")
    model = save_cetp_repo(folder)
    return {"folder": folder, "model": model}


@pytest.fixture(scope="module")
def zero_shot(cetp_repo):
    return pipeline("zero-shot-ecg-classification", model=str(cetp_repo["folder"]))


def test_saved_cetp_references_its_text_tower_and_reloads_exactly(cetp_repo, records):
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from tac_ecg_hf import CETPModel

    folder = cetp_repo["folder"] / "cetp"
    with safe_open(folder / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys and not [k for k in keys if k.startswith("text_model.")]
    assert any(k.startswith("ecg_model.") for k in keys) and "logit_scale" in keys
    config = json.loads((folder / "config.json").read_text())
    assert config["text_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(config["text_model_fingerprint"]) == 64
    reloaded = CETPModel.from_pretrained(folder).eval()
    assert next(reloaded.parameters()).dtype == torch.float32
    original = cetp_repo["model"]
    tokenizer = AutoTokenizer.from_pretrained(original.text_model_path())
    fe = ECGFeatureExtractor.from_pretrained(cetp_repo["folder"])
    x = fe(records[:3], windows="one", return_tensors="pt")["input_values"]
    prompts = [[label] for label in LABELS]
    # equal up to float rounding: the reloaded weights sit at other memory alignments, which picks other SIMD paths
    torch.testing.assert_close(reloaded.zero_shot_scores(x, prompts, tokenizer),
                               original.zero_shot_scores(x, prompts, tokenizer), atol=1e-5, rtol=0)


def test_a_mismatching_text_tower_is_refused(cetp_repo, tmp_path, capsys, cpsc2018_dir):
    from tac_ecg_hf import CETPModel

    repo = tmp_path / "repo"
    shutil.copytree(cetp_repo["folder"], repo)
    config_path = repo / "cetp" / "config.json"
    config = json.loads(config_path.read_text())
    config["text_model_fingerprint"] = "0" * 64
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not the one this CETP model was trained with"):
        CETPModel.from_pretrained(repo / "cetp")
    capsys.readouterr()
    code = main(["zero-shot", str(cpsc2018_dir / "A0001.hea"), "--labels", "normal ECG,atrial fibrillation",
                 "--model", str(repo)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not the one this CETP model was trained with" in err


def test_zero_shot_scores_sum_to_one_and_ignore_label_order(zero_shot, records):
    record = records[0]
    result = zero_shot(record, candidate_labels=LABELS)
    assert sorted(item["label"] for item in result) == sorted(LABELS)
    assert sum(item["score"] for item in result) == pytest.approx(1.0, abs=1e-5)
    assert [item["score"] for item in result] == sorted((item["score"] for item in result), reverse=True)
    shuffled = zero_shot(record, candidate_labels=LABELS[::-1][1:] + LABELS[-1:])
    assert_same_scores(shuffled, result)
    assert zero_shot(record, candidate_labels=LABELS, top_k=2) == result[:2]
    templated = zero_shot(record, candidate_labels=LABELS, hypothesis_template="an ECG showing {}")
    assert sorted(scores(templated)) == sorted(LABELS)
    assert sum(scores(templated).values()) == pytest.approx(1.0, abs=1e-5)
    batched = zero_shot(records[:3], candidate_labels=LABELS, batch_size=4)
    for got, one in zip(batched, records[:3]):
        assert_same_scores(got, zero_shot(one, candidate_labels=LABELS))
    with pytest.raises(ValueError, match="at least two"):
        zero_shot(record, candidate_labels=["normal ECG"])


def test_zero_shot_with_a_cetp_model_object(cetp_repo, zero_shot, records):
    from tac_ecg_hf import CETPModel

    model = CETPModel.from_pretrained(cetp_repo["folder"] / "cetp")  # its feature extractor: the repo root's
    got = pipeline("zero-shot-ecg-classification", model=model)(records[0], candidate_labels=LABELS)
    assert_same_scores(got, zero_shot(records[0], candidate_labels=LABELS), atol=1e-5)


def test_zero_shot_matches_the_dual_encoder(zero_shot, cetp_repo, records):
    """The pipeline's scores are the softmax of CETP's temperature-scaled similarities of the window-averaged ECG
    embedding with each label's text embedding."""
    from transformers import AutoTokenizer

    model = cetp_repo["model"]
    record = records[2]
    fe = ECGFeatureExtractor.from_pretrained(cetp_repo["folder"])
    windows = fe(record, return_tensors="pt")["input_values"]
    tokenizer = AutoTokenizer.from_pretrained(model.text_model_path())
    with torch.no_grad():
        ecg = torch.nn.functional.normalize(model.get_ecg_features(windows).mean(0), dim=-1)
        text = model.encode_texts(LABELS, tokenizer)
        expected = torch.softmax(model.logit_scale.exp() * text @ ecg, -1).numpy()
    got = scores(zero_shot(record, candidate_labels=LABELS))
    np.testing.assert_allclose([got[label] for label in LABELS], expected, atol=1e-5, rtol=0)


def test_zero_shot_cli(cetp_repo, zero_shot, cpsc2018_dir, tiny_repo, capsys):
    path = cpsc2018_dir / "A0001.hea"
    argv = ["zero-shot", str(path), "--labels", ",".join(LABELS), "--model", str(cetp_repo["folder"])]
    assert main(argv + ["--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["record"] == "A0001"
    assert_same_scores(payload["results"], zero_shot(str(path), candidate_labels=LABELS))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert all(label in out for label in LABELS)
    assert main(["zero-shot", str(path), "--labels", "normal ECG"]) == 2
    # a model repository without a cetp/ dual encoder
    assert main(["zero-shot", str(path), "--labels", "normal ECG,atrial fibrillation", "--model", str(tiny_repo)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "has no CETP dual encoder" in err
