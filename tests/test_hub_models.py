"""tac-ecg-hf models on a Hub: encoders, CETP and task adapters pushed with transformers'/PEFT's own push_to_hub to
the test Hub on 127.0.0.1, found by list_task_adapters and loaded back with PEFT, online and offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from peft import PeftModel
from support.local_hub import local_hub_env
from support.repos import TINY_RESNET, outputs, tiny_classifier, with_task_adapters
from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig

from tac_ecg_hf import CETPConfig, CETPModel, create_encoder_config
from tac_ecg_hf.hub import list_task_adapters

TASKS = ["cinc2017", "ptbxl-super"]


@pytest.fixture(scope="module")
def adapters_repo(hub, tmp_path_factory):
    """A base encoder and a PEFT model with two named task adapters, pushed the PEFT way (``push_to_hub`` writes each
    named adapter to ``<repo>/<adapter>/``); returns the expected outputs per task."""
    with pytest.MonkeyPatch.context() as mp:
        local_hub_env(mp, hub, cache_dir=tmp_path_factory.mktemp("hf_home"), offline=False)
        base = tiny_classifier()
        base.push_to_hub("tac-test/tiny-base")
        model = with_task_adapters(base, TASKS)
        x = torch.randn(2, 12, 500)
        expected = outputs(model, TASKS, x)
        model.push_to_hub("tac-test/tiny-adapters")
    return {"x": x, "expected": expected}


def test_encoder_push_and_from_pretrained(hub_env):
    model = tiny_classifier()
    model.push_to_hub("tac-test/tiny-resnet")
    files = set(hub_env.list_files("tac-test/tiny-resnet"))
    assert {"config.json", "model.safetensors", "modeling_resnet1d.py", "configuration_resnet1d.py"} <= files
    assert not any(f.endswith(".bin") for f in files)
    loaded = AutoModelForSequenceClassification.from_pretrained("tac-test/tiny-resnet").eval()
    x = torch.randn(2, 12, 500)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits)
    assert type(AutoModel.from_pretrained("tac-test/tiny-resnet")).__name__ == "ResNet1dModel"


def test_cetp_push_and_from_pretrained(hub_env):
    text = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=100)
    ecg = create_encoder_config("resnet1d", **TINY_RESNET)
    torch.manual_seed(0)
    model = CETPModel(CETPConfig(ecg_config=ecg.to_dict(), text_config=text.to_dict(), projection_dim=16)).eval()
    model.push_to_hub("tac-test/tiny-cetp")
    loaded = AutoModel.from_pretrained("tac-test/tiny-cetp").eval()
    assert isinstance(loaded, CETPModel)
    x, ids = torch.randn(3, 12, 500), torch.randint(0, 100, (3, 7))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, ids).logits_per_ecg, model(x, ids).logits_per_ecg)


def test_peft_named_adapters_are_found_and_load_online(hub_env, adapters_repo):
    files = set(hub_env.list_files("tac-test/tiny-adapters"))
    assert {"ptbxl-super/adapter_config.json", "cinc2017/adapter_model.safetensors"} <= files
    assert list_task_adapters("tac-test/tiny-adapters") == TASKS
    # PEFT's own loading by repo id and subfolder, against the endpoint
    base = AutoModelForSequenceClassification.from_pretrained("tac-test/tiny-base")
    model = PeftModel.from_pretrained(base, "tac-test/tiny-adapters", subfolder="ptbxl-super",
                                      adapter_name="ptbxl-super")
    model.load_adapter("tac-test/tiny-adapters", subfolder="cinc2017", adapter_name="cinc2017")
    got = outputs(model, TASKS, adapters_repo["x"])
    for task in TASKS:
        torch.testing.assert_close(got[task], adapters_repo["expected"][task])


def test_peft_named_adapters_are_found_and_load_offline_from_the_cache(hub_env, adapters_repo, monkeypatch):
    """The call the README shows: ``PeftModel.from_pretrained(base, str(Path(snapshot_download(repo)) / task))``."""
    snapshot_download("tac-test/tiny-base")
    snapshot_download("tac-test/tiny-adapters")
    local_hub_env(monkeypatch, offline=True)
    n = len(hub_env.requests)
    assert list_task_adapters("tac-test/tiny-adapters") == TASKS
    repo = Path(snapshot_download("tac-test/tiny-adapters"))
    base = AutoModelForSequenceClassification.from_pretrained("tac-test/tiny-base")
    model = PeftModel.from_pretrained(base, str(repo / "cinc2017"), adapter_name="cinc2017")
    model.load_adapter(str(repo / "ptbxl-super"), adapter_name="ptbxl-super")
    got = outputs(model, TASKS, adapters_repo["x"])
    for task in TASKS:
        torch.testing.assert_close(got[task], adapters_repo["expected"][task])
    assert len(hub_env.requests) == n


@pytest.mark.xfail(strict=True, raises=LocalEntryNotFoundError,
                   reason="PEFT 0.21: with HF_HUB_OFFLINE=1, from_pretrained(repo_id, subfolder=task) looks for "
                          "<task>/<task>/adapter_model.safetensors (the subfolder is joined twice); load "
                          "str(Path(snapshot_download(repo_id)) / task) instead")
def test_peft_subfolder_by_repo_id_offline(hub_env, adapters_repo, monkeypatch):
    snapshot_download("tac-test/tiny-base")
    snapshot_download("tac-test/tiny-adapters")
    local_hub_env(monkeypatch, offline=True)
    base = AutoModelForSequenceClassification.from_pretrained("tac-test/tiny-base")
    PeftModel.from_pretrained(base, "tac-test/tiny-adapters", subfolder="cinc2017", adapter_name="cinc2017")
