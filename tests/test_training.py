"""The Trainer recipes of tac_ecg_hf.training on the real data with tiny encoders: CETP pre-training, then every
fine-tuning method through the argument dataclasses the example scripts parse, the run folder as a model repository
that the public predict path loads, and a two-process ``accelerate launch`` of examples/finetune.py. Resuming a killed
run is in test_resume.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.tiny import TINY_ENCODERS, tiny_classifier

from tac_ecg_hf.training import (
    ADAPTER_METHODS,
    METHODS,
    CETPArguments,
    DataArguments,
    ModelArguments,
    build_classifier,
    count_parameters,
    parse_args,
    resume_checkpoint,
    run_finetune,
    run_pretrain_cetp,
)

REPO = Path(__file__).resolve().parents[1]
TINY_RESNET = json.dumps(TINY_ENCODERS["resnet1d"])
QUICK = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--disable_tqdm", "True", "--logging_steps", "1",
         "--eval_strategy", "no", "--save_strategy", "no", "--seed", "0"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def cetp_run(data_root, cache, tmp_path_factory) -> Path:
    """A tiny ResNet1d pre-trained with CETP for two steps on PTB-XL pairs (the default MiniLM text tower, frozen)."""
    out = tmp_path_factory.mktemp("cetp")
    cetp_args, data_args, training_args = parse_args(
        (CETPArguments, DataArguments),
        ["--encoder", "resnet1d", "--encoder_overrides", TINY_RESNET, "--projection_dim", "16", "--data_dir",
         str(data_root), "--sources", "ptbxl", "--max_records", "16", "--cache_dir", str(cache), "--output_dir",
         str(out), *QUICK],
    )
    model, metrics = run_pretrain_cetp(cetp_args, data_args, training_args, command="pytest")
    assert metrics["train_pairs"] == 16 and metrics["train_loss"] > 0
    return out


def test_cetp_run_folder_holds_the_encoder_and_the_dual_encoder(cetp_run):
    from transformers import AutoModel

    from tac_ecg_hf.inference import load_feature_extractor
    from tac_ecg_hf.models.cetp import DEFAULT_TEXT_MODEL_ID, CETPModel

    assert type(AutoModel.from_pretrained(cetp_run)).__name__ == "ResNet1dModel"
    assert load_feature_extractor(cetp_run).num_samples == 1000
    cetp = CETPModel.from_pretrained(cetp_run / "cetp")
    assert cetp.config.text_model_name_or_path == DEFAULT_TEXT_MODEL_ID  # the frozen tower is referenced, not copied
    for key, value in AutoModel.from_pretrained(cetp_run).state_dict().items():
        assert torch.equal(cetp.ecg_model.state_dict()[key], value), key
    assert json.loads((cetp_run / "cetp_metrics.json").read_text())["command"] == "pytest"


def _finetune(base: Path | None, method: str, task: str, data_root, cache, out: Path, *extra: str):
    model_args, data_args, training_args = parse_args(
        (ModelArguments, DataArguments),
        [*(["--base_model", str(base)] if base else ["--encoder", "resnet1d", "--encoder_overrides", TINY_RESNET]),
         "--method", method, "--rank", "2", "--task", task, "--data_dir", str(data_root), "--sources", task,
         "--max_records", "8", "--cache_dir", str(cache), "--bootstrap_resamples", "0", "--output_dir", str(out),
         *QUICK, *extra],
    )
    return run_finetune(model_args, data_args, training_args, command="pytest")


def test_lrc_run_folder_is_a_model_repository(cetp_run, data_root, cache, tmp_path, capsys):
    """The adapter of a single-lead task on the CETP encoder: encoder files copied, the task's own
    preprocessor_config.json (lead I), metrics through the public predict path, and tac-ecg predict uses the folder."""
    from safetensors.torch import load_file

    from tac_ecg_hf.cli import main
    from tac_ecg_hf.inference import ECGTaskClassifier, load_feature_extractor

    out = tmp_path / "run"
    result = _finetune(cetp_run, "lrc", "cinc2017", data_root, cache, out)
    assert (out / "model.safetensors").read_bytes() == (cetp_run / "model.safetensors").read_bytes()  # frozen
    assert load_feature_extractor(out, "cinc2017").input_leads == ["I"]
    assert load_feature_extractor(out).input_leads is None
    config = json.loads((out / "cinc2017" / "adapter_config.json").read_text())
    assert config["task_name"] == "cinc2017" and config["encoder_fingerprint"].startswith("sha256:")
    assert config["metrics"]["command"] == "pytest" and config["metrics"]["test"]["n"] == result.test_metrics["n"]
    assert result.test_metrics["n"] > 0 and 0 <= result.test_metrics["accuracy"] <= 1
    assert 0 < result.trainable_params < 0.5 * result.total_params
    assert json.loads((out / "result.json").read_text())["method"] == "lrc"
    assert (out / "cinc2017" / "card_metadata.json").is_file()
    trained = load_file(out / "cinc2017" / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in trained.items() if "lrc_up" in k)  # the zero-initialised side moved
    prediction = ECGTaskClassifier.from_pretrained(out).predict(data_root / "cpsc2018" / "A0001.hea", task="cinc2017")
    assert prediction.labels == ["N", "A", "O", "~"] and any("reads only lead(s) ['I']" in n for n in prediction.notes)
    assert main(["predict", str(data_root / "cpsc2018" / "A0001.hea"), "--task", "cinc2017", "--model", str(out)]) == 0
    assert "task cinc2017" in capsys.readouterr().out


@pytest.mark.parametrize("method", [m for m in METHODS if m != "lrc"])
def test_every_other_method_trains_and_reports(method, cetp_run, data_root, cache, tmp_path):
    out = tmp_path / method
    result = _finetune(None if method == "scratch" else cetp_run, method, "cpsc2018", data_root, cache, out)
    assert 0 < result.trainable_params <= result.total_params
    if method in ("lrc-parallel", "lora", "linear"):
        assert result.trainable_params < 0.5 * result.total_params
    assert result.test_metrics["n"] > 0 and 0 <= result.test_metrics["macro_f1"] <= 1
    assert len(result.thresholds) == 9 and all(0 <= t <= 1 for t in result.thresholds)  # calibrated on validation
    if method in ADAPTER_METHODS:
        assert (out / "cpsc2018" / "adapter_config.json").is_file()
    else:
        assert json.loads((out / "config.json").read_text())["architectures"][0].endswith("ForSequenceClassification")
    from tac_ecg_hf.inference import ECGTaskClassifier

    classifier = ECGTaskClassifier.from_pretrained(out)  # the run folder through the public predict path
    assert classifier.tasks == ["cpsc2018"]
    assert classifier.thresholds("cpsc2018") == pytest.approx(result.thresholds, abs=1e-6)
    assert len(classifier.predict(data_root / "cpsc2018" / "A0001.hea", task="cpsc2018").probabilities) == 9


def test_linear_probe_keeps_batchnorm_statistics(tmp_path):
    tiny_classifier("resnet1d").encoder.save_pretrained(tmp_path)
    model = build_classifier(tmp_path, "ptbxl-super", "linear")
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()
    model(input_values=torch.randn(8, 12, 1000), labels=torch.ones(8, 5)).loss.backward()
    for key, value in model.state_dict().items():
        if key in stats:
            torch.testing.assert_close(value, stats[key], msg=key)
    trainable, _ = count_parameters(model)
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if n.startswith("head."))


def test_argument_dataclasses_refuse_bad_values(tmp_path):
    with pytest.raises(ValueError, match="--method must be one of"):
        ModelArguments(base_model="x", method="adapterX")
    with pytest.raises(ValueError, match="needs --base_model"):
        ModelArguments(method="lrc")
    with pytest.raises(KeyError, match="Unknown task"):
        DataArguments(task="nope")
    with pytest.raises(ValueError, match="--label_fraction"):
        DataArguments(label_fraction=0)
    with pytest.raises(ValueError, match="--bootstrap_resamples"):
        DataArguments(bootstrap_resamples=-1)
    argv = ["--base_model", "x", "--output_dir", str(tmp_path)]
    _, _, training_args = parse_args((ModelArguments, DataArguments), argv)
    assert training_args.report_to == [] or training_args.report_to == "none" or "none" in training_args.report_to
    assert training_args.save_total_limit == 2 and not training_args.remove_unused_columns


def test_resume_checkpoint_skips_a_checkpoint_a_kill_left_incomplete(tmp_path):
    from transformers import TrainingArguments

    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-4").mkdir()  # killed while saving: no trainer_state.json yet
    args = TrainingArguments(output_dir=str(tmp_path), resume_from_checkpoint="True", report_to="none")
    assert resume_checkpoint(args) == str(tmp_path / "checkpoint-2")
    assert (tmp_path / "incomplete-checkpoint-4").is_dir() and not (tmp_path / "checkpoint-4").exists()
    assert resume_checkpoint(TrainingArguments(output_dir=str(tmp_path / "fresh"), report_to="none")) is None


@pytest.mark.slow
def test_accelerate_two_processes(cetp_run, data_root, cache, tmp_path):
    """``accelerate launch`` with two real CPU processes (the distributed code paths) trains and evaluates."""
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PATH": venv_bin + os.pathsep + os.environ["PATH"],
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    out = tmp_path / "ddp"
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]
    script = ["examples/finetune.py", "--task", "cinc2017", "--method", "lrc", "--rank", "2", "--base_model",
              str(cetp_run), "--data_dir", str(data_root), "--sources", "cinc2017", "--max_records", "8",
              "--cache_dir", str(cache), "--bootstrap_resamples", "0", "--output_dir", str(out), *QUICK,
              "--save_strategy", "steps", "--save_steps", "2"]
    proc = subprocess.run(launch + script, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Trainer saves one RNG state per process: two processes really ran
    states = sorted(p.name for p in (out / "checkpoint-2").glob("rng_state*.pth"))
    assert states == ["rng_state_0.pth", "rng_state_1.pth"], states
    assert (out / "cinc2017" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "result.json").read_text())["test"]["n"] > 0
