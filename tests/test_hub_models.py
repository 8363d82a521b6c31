"""tac-ecg-hf models on a Hub: encoders, CETP and LRC-Adapters pushed to and pulled from a local Hub-compatible
endpoint on 127.0.0.1, and `tac-ecg push` of a bundled checkpoint."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel, get_peft_model
from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig

from tac_ecg_hf import CETPConfig, CETPModel, LRCConfig, create_encoder_config
from tac_ecg_hf.models.encoders import ResNet1dForSequenceClassification
from tac_ecg_hf.testing.local_hub import LocalHubServer, local_hub_env

TINY_RESNET = {"base_width": 8, "layers": [1, 1]}


@pytest.fixture(scope="module")
def hub():
    with LocalHubServer() as server:
        yield server
        assert server.errors == []


@pytest.fixture
def hub_env(hub, tmp_path, monkeypatch):
    local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home")
    return hub


def _tiny_classifier(num_labels=5):
    torch.manual_seed(0)
    config = create_encoder_config("resnet1d", **TINY_RESNET, num_labels=num_labels, problem_type="multi_label_classification")
    return ResNet1dForSequenceClassification(config).eval()


def test_encoder_push_and_from_pretrained(hub_env):
    model = _tiny_classifier()
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


def test_task_adapters_push_and_load_by_task_name(hub_env):
    base = _tiny_classifier()
    base.push_to_hub("tac-test/tiny-base")
    model = get_peft_model(base, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    model.add_adapter("cinc2017", LRCConfig.for_task("cinc2017"))
    for name, param in model.named_parameters():
        if "lrc_up" in name:
            torch.nn.init.normal_(param, std=0.05)
    model.eval()
    x = torch.randn(2, 12, 500)
    expected = {}
    for task in ("ptbxl-super", "cinc2017"):
        model.set_adapter(task)
        with torch.no_grad():
            expected[task] = model(input_values=x).logits
    model.push_to_hub("tac-test/tiny-adapters")
    files = set(hub_env.list_files("tac-test/tiny-adapters"))
    assert {"ptbxl-super/adapter_config.json", "cinc2017/adapter_model.safetensors"} <= files

    fresh = AutoModelForSequenceClassification.from_pretrained("tac-test/tiny-base")
    loaded = PeftModel.from_pretrained(fresh, "tac-test/tiny-adapters", subfolder="ptbxl-super", adapter_name="ptbxl-super")
    loaded.load_adapter("tac-test/tiny-adapters", subfolder="cinc2017", adapter_name="cinc2017")
    for task in ("cinc2017", "ptbxl-super"):
        loaded.set_adapter(task)
        with torch.no_grad():
            torch.testing.assert_close(loaded(input_values=x).logits, expected[task])


def test_cli_push_bundled_then_classify_from_the_hub(hub_env, data_root, monkeypatch, capsys):
    """`tac-ecg push` publishes a bundled checkpoint; the same id then resolves from the Hub with identical output."""
    from tac_ecg_hf.cli import main
    from tac_ecg_hf.hub import bundled_path
    from tac_ecg_hf.inference import ECGTaskClassifier

    if bundled_path("tac-ecg/resnet-cetp") is None:
        pytest.skip("no bundled checkpoint")
    assert main(["push", "tac-ecg/resnet-cetp", "--endpoint", hub_env.endpoint, "--repo-id", "tac-mirror/resnet-cetp"]) == 0
    assert "pushed" in capsys.readouterr().out
    files = set(hub_env.list_files("tac-mirror/resnet-cetp"))
    assert {"config.json", "model.safetensors", "README.md", "adapters/cinc2017/adapter_model.safetensors"} <= files

    record = str(data_root / "cinc2017" / "A00001.hea")
    bundled = ECGTaskClassifier.from_pretrained("tac-ecg/resnet-cetp", tasks="cinc2017").predict(record, task="cinc2017")
    from_hub = ECGTaskClassifier.from_pretrained("tac-mirror/resnet-cetp", tasks="cinc2017", revision="main")
    assert "hf_home" in str(from_hub.model_path)  # downloaded into the isolated cache, not the bundled folder
    torch.testing.assert_close(
        torch.as_tensor(from_hub.predict(record, task="cinc2017").probabilities), torch.as_tensor(bundled.probabilities)
    )
