"""Training on the real data through Trainer: CETP pre-training, every fine-tuning method, the example scripts, the
demo, and a two-process Accelerate launch. Tiny encoders and a few records keep it to seconds each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tac_ecg_hf.training import METHODS, build_classifier, count_parameters, finetune, pretrain_cetp, save_finetuned

REPO = Path(__file__).resolve().parents[1]
TINY = ("resnet1d", {"base_width": 8, "layers": [1, 1]})


@pytest.fixture(scope="module")
def ptbxl_pairs(ptbxl_dir, tmp_path_factory):
    from tac_ecg_hf.data import load_cetp_pairs

    arrays = sorted(ptbxl_dir.glob("*.npz"))
    return load_cetp_pairs(
        str(ptbxl_dir), array_file=str(arrays[0]), max_records=48, cache_dir=str(tmp_path_factory.mktemp("pairs"))
    )


@pytest.fixture(scope="module")
def cetp_encoder(ptbxl_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("cetp")
    model, metrics = pretrain_cetp(
        ptbxl_pairs, out, encoder=TINY[0], encoder_overrides=TINY[1], projection_dim=16, epochs=2, batch_size=16,
        disable_tqdm=True, logging_strategy="no",
    )
    assert metrics["train_loss"] > 0 and "eval_loss" in metrics
    return out / "encoder"


@pytest.fixture(scope="module")
def ptbxl_task(data_root, tmp_path_factory):
    from tac_ecg_hf.evaluation import load_task_dataset

    return load_task_dataset("ptbxl-super", data_root, cache_dir=tmp_path_factory.mktemp("task"), max_records=32)


def test_cetp_saves_dual_encoder_and_encoder(cetp_encoder):
    from transformers import AutoModel

    root = cetp_encoder.parent
    assert (root / "cetp" / "model.safetensors").is_file() and (root / "cetp" / "tokenizer.json").is_file()
    assert type(AutoModel.from_pretrained(root / "cetp")).__name__ == "CETPModel"
    assert type(AutoModel.from_pretrained(cetp_encoder)).__name__ == "ResNet1dModel"


def test_cetp_with_frozen_text_tower_caches_text_and_matches_uncached(ptbxl_pairs):
    """The cached pooled text states give the same loss as running the frozen text tower each step."""
    from transformers import AutoTokenizer

    from tac_ecg_hf.models.cetp import CETPModel, default_text_model_path
    from tac_ecg_hf.models.encoders import ENCODER_FAMILIES, create_encoder_config
    from tac_ecg_hf.training import CETPCollator, encode_text_cache

    config = create_encoder_config(TINY[0], **TINY[1])
    model = CETPModel.from_ecg_text_pretrained(ENCODER_FAMILIES[config.model_type][1](config), projection_dim=16).eval()
    tok = AutoTokenizer.from_pretrained(default_text_model_path())
    rows = [ptbxl_pairs["train"][i] for i in range(6)]
    cache = encode_text_cache(model, tok, sorted({r["text"] for r in rows}))
    with torch.no_grad():
        cached = model(**CETPCollator(tok, text_cache=cache)(rows)).loss
        direct = model(**CETPCollator(tok)(rows)).loss
    torch.testing.assert_close(cached, direct, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_reports(method, cetp_encoder, ptbxl_task, tmp_path):
    model, result = finetune(
        ptbxl_task, "ptbxl-super", method, base=None if method == "scratch" else cetp_encoder, output_dir=tmp_path,
        epochs=1, batch_size=16, encoder=TINY[0], encoder_overrides=TINY[1], disable_tqdm=True, logging_strategy="no",
    )
    assert 0 < result.trainable_params <= result.total_params
    if method in ("lrc", "lrc-parallel", "lora", "linear"):
        assert result.trainable_params < 0.5 * result.total_params
    assert 0.0 <= result.test_metrics["test_macro_auc"] <= 1.0
    assert len(result.test_scores) == len(ptbxl_task["test"])
    saved = save_finetuned(model, result, tmp_path, command="pytest")
    assert any(saved.glob("*.safetensors"))
    assert json.loads((tmp_path / "result.json").read_text())["method"] == method


def test_adapter_training_leaves_frozen_encoder_untouched(cetp_encoder, ptbxl_task, tmp_path):
    from safetensors.torch import load_file

    before = load_file(cetp_encoder / "model.safetensors")
    model, _ = finetune(ptbxl_task, "ptbxl-super", "lrc", base=cetp_encoder, output_dir=tmp_path, epochs=1, batch_size=16,
                        disable_tqdm=True, logging_strategy="no")
    after = {k.replace("base_layer.", ""): v for k, v in model.base_model.model.state_dict().items() if "lrc_" not in k}
    for key, value in before.items():
        torch.testing.assert_close(after[f"encoder.{key}"], value, msg=key)


def test_linear_probe_keeps_batchnorm_statistics(cetp_encoder, ptbxl_task, tmp_path):
    model = build_classifier(cetp_encoder, "ptbxl-super", "linear")
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()
    model(input_values=torch.randn(8, 12, 1000), labels=torch.ones(8, 5)).loss.backward()
    for key, value in model.state_dict().items():
        if key in stats:
            torch.testing.assert_close(value, stats[key], msg=key)
    trainable, total = count_parameters(model)
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if n.startswith("head."))


def _run(cmd, timeout=600, **env):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})


def test_example_scripts_run(ptbxl_dir, data_root, tmp_path):
    out = _run([sys.executable, "examples/pretrain_cetp.py", "--data-dir", str(ptbxl_dir), "--encoder", "resnet1d",
                "--encoder-overrides", json.dumps(TINY[1]), "--epochs", "1", "--batch-size", "16", "--max-records", "32",
                "--projection-dim", "16", "--output-dir", str(tmp_path / "cetp")])
    assert out.returncode == 0, out.stderr[-3000:]
    out = _run([sys.executable, "examples/finetune.py", "--task", "cinc2017", "--method", "lrc", "--base",
                str(tmp_path / "cetp" / "encoder"), "--data-dir", str(data_root), "--epochs", "1", "--batch-size", "16",
                "--max-records", "24", "--output-dir", str(tmp_path / "ft")])
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((tmp_path / "ft" / "adapters" / "cinc2017" / "adapter_config.json").read_text())
    assert config["task_name"] == "cinc2017" and "test_macro_auc" in config["metrics"]
    assert config["metrics"]["command"].startswith("python examples/finetune.py --task cinc2017")


@pytest.mark.slow
def test_accelerate_two_processes(cetp_encoder, data_root, tmp_path):
    """`accelerate launch` with two real CPU processes (the distributed code paths) trains and evaluates."""
    out = _run(["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
                "no", "--dynamo_backend", "no", "examples/finetune.py", "--task", "cinc2017", "--method", "lrc", "--base",
                str(cetp_encoder), "--data-dir", str(data_root), "--epochs", "1", "--batch-size", "8", "--max-records", "24",
                "--output-dir", str(tmp_path / "ddp")], timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "ddp" / "adapters" / "cinc2017" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_demo_quick(data_root, tmp_path, capsys):
    from tac_ecg_hf.demo import run_demo

    rows = run_demo(str(data_root), output_dir=str(tmp_path), quick=True)
    assert [r["method"] for r in rows] == ["CETP + LRC-Adapter", "CETP + linear probe", "from scratch (full)"]
    assert all(0.0 <= r["auc"] <= 1.0 for r in rows)
    assert rows[0]["trainable"] < rows[2]["trainable"]
    out = capsys.readouterr().out
    assert "test macro-AUC" in out and "demo finished" in out
