"""The models bundled in the package: the PEFT layout (encoder + feature extractor at the root, one adapter folder per
task, the CETP dual encoder in cetp/), float32 safetensors and no generated code, calibrated thresholds, model cards
whose metrics the evaluation recomputes from these very files, outputs on real records against stored expectations,
and one record in every file format giving one prediction."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tac_ecg_hf.hub import bundled_path, bundled_repo_ids
from tac_ecg_hf.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
EXPECTED = REPO / "tests" / "data" / "bundled_expected.json"
BUNDLED = ["tac-ecg/xresnet1d101-cetp", "tac-ecg/resnet-cetp"]
TASKS = ["chapman", "cinc2017", "cpsc2018", "ptbxl-super"]


def _adapter_config(repo_id: str, task: str) -> dict:
    return json.loads((bundled_path(repo_id) / task / "adapter_config.json").read_text())


def test_layout_is_the_peft_one_with_safetensors_only():
    from safetensors import safe_open

    assert set(BUNDLED) <= set(bundled_repo_ids())
    total = 0
    for repo_id in BUNDLED:
        root = bundled_path(repo_id)
        for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md"):
            assert (root / name).is_file(), f"{repo_id} lacks {name}"
        assert sorted(p.parent.name for p in root.glob("*/adapter_config.json")) == TASKS
        for task in TASKS:
            config = _adapter_config(repo_id, task)
            assert config["peft_type"] == "LRC_ADAPTER" and config["task_name"] == task
            assert config["labels"] == list(get_task(task).labels)
            assert config["base_model_name_or_path"] == repo_id
            assert config["encoder_fingerprint"]
        cetp = json.loads((root / "cetp" / "config.json").read_text())
        assert cetp["model_type"] == "cetp"
        assert cetp["text_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
        with safe_open(root / "cetp" / "model.safetensors", "pt") as f:
            assert not [k for k in f.keys() if k.startswith("text_model.")], "the text tower is referenced, not copied"
        for weights in root.rglob("*.safetensors"):
            with safe_open(weights, "pt") as f:
                assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} <= {"F32", "I64"}, weights
        files = [p for p in root.rglob("*") if p.is_file()]
        suffixes = (".py", ".bin", ".pt", ".pth", ".pkl", ".ckpt")
        assert not [p for p in files if p.suffix in suffixes], "no generated code, no pickles"
        total += sum(p.stat().st_size for p in files)
    assert total < 30 * 2**20, f"bundled models take {total / 2**20:.1f} MiB"


def test_single_lead_task_reads_lead_i_and_thresholds_are_calibrated():
    for repo_id in BUNDLED:
        fe = json.loads((bundled_path(repo_id) / "cinc2017" / "preprocessor_config.json").read_text())
        assert fe["input_leads"] == ["I"]
        root_fe = json.loads((bundled_path(repo_id) / "preprocessor_config.json").read_text())
        assert root_fe["bandpass"] == [0.5, 40.0] and root_fe["sampling_rate"] == 100
        for task in ("ptbxl-super", "cpsc2018"):
            thresholds = _adapter_config(repo_id, task)["thresholds"]
            assert len(thresholds) == get_task(task).num_labels and all(0 < t < 1 for t in thresholds)
            assert len(set(thresholds)) > 1, "calibrated per class, not one fixed 0.5"


def test_model_cards_report_the_metrics_stored_with_the_adapters():
    from huggingface_hub import ModelCard

    for repo_id in BUNDLED:
        card = ModelCard.load(bundled_path(repo_id) / "README.md")
        assert card.data.license and "not a medical device" in card.text.lower()
        assert "examples/pretrain_cetp.py" in card.text and "Zero-shot" in card.text
        results = {(r.task_name, r.metric_name): r.metric_value for r in card.data.eval_results}
        for task in TASKS:
            metrics = _adapter_config(repo_id, task)["metrics"]
            test = metrics["test"]
            assert results[(f"ECG classification: {task}", "macro-AUC")] == pytest.approx(test["macro_auc"], abs=1e-5)
            assert "--seed 0" in metrics["command"] and metrics["command"] in card.text
            low, high = test["macro_auc_ci95"]
            assert f"{test['macro_auc']:.3f} ({low:.3f}-{high:.3f})" in card.text
            if get_task(task).exhaustive:
                assert test["empty_decision_rate"] == 0.0, "an exhaustive task never decides nothing"
        for task in ("cpsc2018", "cinc2017"):
            cv = _adapter_config(repo_id, task)["metrics"]["cv"]
            assert any(re.search(r"5-fold CV", k) for k in cv) and all(v["n"] > 0 for v in cv.values())


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_default_model_card_metrics_are_recomputed_from_the_files(task, data_root):
    """What `tac-ecg evaluate` recomputes from the bundled files is what the card says."""
    from tac_ecg_hf.evaluation import evaluate_split

    stored = _adapter_config(BUNDLED[0], task)["metrics"]["test"]
    result = evaluate_split(BUNDLED[0], task, data_root, split="test", n_bootstrap=0)
    assert result["n"] == stored["n"]
    for key in ("macro_auc", "macro_f1", "accuracy"):
        assert result[key] == pytest.approx(stored[key], abs=1e-6), key


def test_outputs_on_real_records_match_stored_expectations(data_root):
    from tac_ecg_hf.inference import ECGTaskClassifier

    expected = json.loads(EXPECTED.read_text())["records"]
    assert set(expected) == set(BUNDLED)
    for repo_id, tasks in expected.items():
        clf = ECGTaskClassifier.from_pretrained(repo_id)
        for task, records in tasks.items():
            for rel, probs in records.items():
                pred = clf.predict(str(Path(data_root) / rel), task=task)
                np.testing.assert_allclose(pred.probabilities, probs, atol=2e-4, err_msg=f"{repo_id} {task} {rel}")


def test_predict_same_record_in_every_file_format(data_root, tmp_path, capsys):
    """One real CPSC2018 record as WFDB .hea/.mat, WFDB .hea/.dat, bare .mat, .npy and CSV: `tac-ecg predict`
    gives the same probabilities for all of them."""
    import scipy.io
    import wfdb

    from tac_ecg_hf.cli import main
    from tac_ecg_hf.data import read_record

    src = Path(data_root) / "cpsc2018" / "A0002.hea"
    record = read_record(src)
    signal = record.signal.astype(np.float64)  # (12, T) in mV
    leads = list(record.lead_names)
    fs = int(record.sampling_rate)
    wfdb.wrsamp("rec", fs=fs, units=["mV"] * 12, sig_name=leads, p_signal=signal.T, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    scipy.io.savemat(tmp_path / "bare.mat", {"val": np.round(signal * 1000).astype(np.int16)})
    np.save(tmp_path / "rec.npy", signal.astype(np.float32))
    (tmp_path / "rec.csv").write_text(
        ",".join(leads) + "\n" + "\n".join(",".join(f"{v:.4f}" for v in row) for row in signal.T) + "\n"
    )
    cases = {
        "wfdb-mat": [str(src)],
        "wfdb-dat": [str(tmp_path / "rec.hea")],
        "bare-mat": [str(tmp_path / "bare.mat"), "--fs", str(fs), "--gain", "1000"],
        "npy": [str(tmp_path / "rec.npy"), "--fs", str(fs)],
        "csv": [str(tmp_path / "rec.csv"), "--fs", str(fs)],
    }
    probs = {}
    for name, args in cases.items():
        assert main(["predict", *args, "--task", "cpsc2018", "--model", "tac-ecg/resnet-cetp", "--json"]) == 0, name
        out = capsys.readouterr().out
        probs[name] = np.array(list(json.loads(out[out.index("{"):])["probabilities"].values()))
    for name, p in probs.items():
        np.testing.assert_allclose(p, probs["wfdb-mat"], atol=2e-3, err_msg=name)
