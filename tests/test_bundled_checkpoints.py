"""The checkpoints bundled in the package: layout, size, loading (package API, plain transformers from the seeded
cache, offline), outputs on real records against stored expected values, and model-card metrics recomputed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tac_ecg_hf.hub import bundled_path, bundled_repo_ids
from tac_ecg_hf.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
EXPECTED = REPO / "tests" / "data" / "bundled_expected.json"
BUNDLED = ["tac-ecg/xresnet1d101-cetp", "tac-ecg/resnet-cetp"]
TASKS = ["ptbxl-super", "cpsc2018", "cinc2017"]


def _adapter_config(repo_id: str, task: str) -> dict:
    return json.loads((bundled_path(repo_id) / "adapters" / task / "adapter_config.json").read_text())


def test_bundled_layout_is_hub_repo_with_safetensors_only():
    assert set(BUNDLED) <= set(bundled_repo_ids())
    total = 0
    for repo_id in BUNDLED:
        root = bundled_path(repo_id)
        for name in ("config.json", "model.safetensors", "README.md"):
            assert (root / name).is_file(), f"{repo_id} lacks {name}"
        for task in TASKS:
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                assert (root / "adapters" / task / name).is_file(), f"{repo_id}/{task} lacks {name}"
            config = _adapter_config(repo_id, task)
            assert config["peft_type"] == "LRC_ADAPTER"
            assert config["task_name"] == task
            assert config["labels"] == list(get_task(task).labels)
            model_type = json.loads((root / "config.json").read_text())["model_type"]
            assert config["encoder_signature"]["model_type"] == model_type
        files = [p for p in root.rglob("*") if p.is_file()]
        assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
        total += sum(p.stat().st_size for p in files)
    assert total < 12 * 2**20, f"bundled checkpoints take {total / 2**20:.1f} MiB; keep them to a few MB"


def test_weights_are_float16_and_load_as_float32():
    from safetensors import safe_open

    from tac_ecg_hf.inference import ECGTaskClassifier

    for repo_id in BUNDLED:
        with safe_open(bundled_path(repo_id) / "model.safetensors", "pt") as f:
            dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
        assert dtypes <= {"F16", "I64"}, dtypes
    clf = ECGTaskClassifier.from_pretrained("tac-ecg/resnet-cetp")
    assert clf.tasks == sorted(TASKS)
    assert {p.dtype for p in clf.model.parameters()} == {__import__("torch").float32}


def test_model_cards_have_metadata_metrics_and_commands():
    for repo_id in BUNDLED:
        card = (bundled_path(repo_id) / "README.md").read_text()
        assert card.startswith("---\n") and "model-index:" in card and "license:" in card
        assert "Intended use and limits" in card and "not a medical device" in card.lower()
        for task in TASKS:
            metrics = _adapter_config(repo_id, task)["metrics"]
            assert f"| `{task}` |" in card
            assert f"{metrics['test_macro_auc']:.3f}" in card
            assert metrics["command"] in card and "--seed 0" in metrics["command"]
        assert "examples/pretrain_cetp.py" in card


def test_plain_transformers_loads_bundled_offline_from_seeded_cache(tmp_path):
    """`AutoModel.from_pretrained("tac-ecg/resnet-cetp")` after `import tac_ecg_hf`, offline, empty HF_HOME."""
    code = (
        "import tac_ecg_hf\n"
        "from transformers import AutoModel, AutoModelForSequenceClassification\n"
        "m = AutoModel.from_pretrained('tac-ecg/resnet-cetp')\n"
        "c = AutoModelForSequenceClassification.from_pretrained('tac-ecg/xresnet1d101-cetp', num_labels=5)\n"
        "print(type(m).__name__, type(c).__name__)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    env.pop("TAC_ECG_NO_CACHE_SEED", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ResNet1dModel XResNet1dForSequenceClassification" in out.stdout


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


@pytest.mark.slow
@pytest.mark.parametrize("repo_id", BUNDLED)
def test_model_card_metrics_are_reproduced_by_evaluation(repo_id, data_root, tmp_path, monkeypatch):
    from tac_ecg_hf.evaluation import evaluate_bundled

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    for task in TASKS:
        stored = _adapter_config(repo_id, task)["metrics"]
        result = evaluate_bundled(repo_id, task, data_dir=data_root, split="test")
        assert result["n"] == stored["test_num_samples"]
        assert result["macro_auc"] == pytest.approx(stored["test_macro_auc"], abs=1e-5)
        assert result["macro_f1"] == pytest.approx(stored["test_macro_f1"], abs=1e-5)
        assert result["accuracy"] == pytest.approx(stored["test_accuracy"], abs=1e-5)


def test_readme_main_command_classifies_a_real_record(data_root, tmp_path, capsys):
    from tac_ecg_hf.cli import main

    record = Path(data_root) / "cpsc2018" / "A0001.hea"
    plot = tmp_path / "a0001.png"
    assert main(["predict", str(record), "--task", "cpsc2018", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "decision" in out and "RBBB" in out
    assert plot.is_file() and plot.stat().st_size > 10_000


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


def test_bundled_remote_code_matches_the_package():
    """The .py files in a bundled repo (for trust_remote_code) are verbatim copies of the package's encoder files."""
    encoders = REPO / "tac_ecg_hf" / "models" / "encoders"
    for repo_id in BUNDLED:
        copies = sorted(bundled_path(repo_id).glob("*.py"))
        assert copies, repo_id
        for copy in copies:
            assert copy.read_text() == (encoders / copy.name).read_text(), f"{repo_id}/{copy.name} is stale"
