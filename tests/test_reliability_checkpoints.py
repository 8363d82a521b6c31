"""Checkpoints that are not what they claim: strict encoder configs, malformed JSON files of a model repository, an
adapter of another encoder family, pickle-only repositories. Each is refused with one line, of one of the package's
own exception types (exit status 2 in the CLI). Weight verification itself (foreign, missing and differently shaped
tensors, fingerprints, truncated files) is in test_weights_verification.py; the sizes of configs in
test_config_bounds.py; the bundled-model cases through the CLI in test_reliability_cases.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from support.tiny import TINY_ENCODERS, tiny_classifier, tiny_config, tiny_peft_model

from tac_ecg_hf import AdapterMismatchError
from tac_ecg_hf.data import ECGConfigError
from tac_ecg_hf.errors import bad_input_error_types
from tac_ecg_hf.inference import ECGTaskClassifier
from tac_ecg_hf.models.encoders import ConfigFieldError
from tac_ecg_hf.safety import AdapterConfigError, CheckpointFileError, UnsafeCheckpointError, load_encoder


def one_line_refusal(info) -> str:
    message = str(info.value)
    assert isinstance(info.value, bad_input_error_types()), type(info.value)
    assert "\n" not in message and len(message) < 1000, message
    return message


def _saved_config(folder: Path, family="xresnet1d", **overrides) -> dict:
    tiny_config(family, **overrides).save_pretrained(folder)
    return json.loads((folder / "config.json").read_text())


# -- strict encoder configs -----------------------------------------------------------------------------------------


def test_config_with_unknown_field_is_refused(tmp_path):
    from transformers import AutoConfig

    config = _saved_config(tmp_path)
    config["layrs"] = config.pop("layers")
    config["layers"] = [1, 1]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigFieldError, match=r"unknown field\(s\) \['layrs'\].*'layrs' -> 'layers'"):
        AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(ConfigFieldError, match=r"\['kernal_size'\]"):
        tiny_config("resnet1d", kernal_size=5)
    assert isinstance(ConfigFieldError("x"), ValueError)


@pytest.mark.parametrize(
    "family, field",
    [("xresnet1d", "layers"), ("resnet1d", "base_width"), ("fcn1d", "widths"), ("xresnet1d", "in_channels"),
     ("lstm1d", "sampling_rate")],
)
def test_config_file_missing_architecture_fields_is_refused(tmp_path, family, field):
    from transformers import AutoConfig, AutoModel

    config = _saved_config(tmp_path, family)
    del config[field]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigFieldError, match=rf"lacks the field\(s\) \['{field}'\]"):
        AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(ConfigFieldError, match=rf"config\.json of {tmp_path}"):
        AutoModel.from_pretrained(tmp_path)
    assert tiny_config(family).model_type == family  # in code, the defaults are still fine


def test_config_keys_written_by_transformers_are_accepted(tmp_path):
    from transformers import AutoConfig

    config = _saved_config(tmp_path)
    config.update(
        torch_dtype="float32", architectures=["XResNet1dModel"], _commit_hash="abc", _name_or_path="x",
        bos_token_id=None, use_cache=True, num_beams=1, output_attentions=False,
    )
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoConfig.from_pretrained(tmp_path, num_labels=5, problem_type="multi_label_classification")
    assert loaded.num_labels == 5 and loaded.problem_type == "multi_label_classification"
    assert loaded.layers == TINY_ENCODERS["xresnet1d"]["layers"]


# -- malformed JSON files: refused before transformers or PEFT parse them ---------------------------------------------

MALFORMED = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00",
    "truncated": b'{"model_type": "xresnet1d", "layers": [1,',
    "list": b"[1, 2, 3]",
    "null": b"null",
}


@pytest.mark.parametrize("content", list(MALFORMED), ids=list(MALFORMED))
@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json", "cinc2017/preprocessor_config.json",
                                  "cpsc2018/adapter_config.json"])
def test_malformed_json_files_of_a_repo_are_refused(tiny_repo_copy, name, content):
    (tiny_repo_copy / name).write_bytes(MALFORMED[content])
    task = "cinc2017" if name.startswith("cinc2017") else "cpsc2018"
    error = AdapterConfigError if name.endswith("adapter_config.json") else CheckpointFileError
    with pytest.raises(error, match=rf"{name.split('/')[-1]} (is not valid JSON|holds a JSON)") as info:
        ECGTaskClassifier.from_pretrained(tiny_repo_copy, tasks=[task])
    one_line_refusal(info)


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(model_type="not-a-model"), r"model_type 'not-a-model' is not a registered model type"),
        (dict(model_type=None), r"model_type None is not a registered model type"),
        (dict(auto_map=3), r"auto_map must be a JSON object"),
        (dict(auto_map=None), r"auto_map must be a JSON object"),
        (dict(architectures="XResNet1dModel"), r"architectures must be a JSON list"),
    ],
)
def test_encoder_config_fields_transformers_would_trip_on(tiny_repo_copy, changes, match):
    config = json.loads((tiny_repo_copy / "config.json").read_text())
    config.update(changes)
    (tiny_repo_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFileError, match=match) as info:
        load_encoder(tiny_repo_copy)
    one_line_refusal(info)


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(lead_names="I"), r"lead_names must be a list of lead names"),
        (dict(lead_names=[1, 2]), r"lead_names must be a list of lead names"),
        (dict(input_leads=7), r"input_leads must be a list of lead names"),
        (dict(bandpass=False), r"bandpass must be \[low, high\]"),
        (dict(padding_value=[0]), r"padding_value must be a finite number"),
        (dict(num_samples=10**9), r"num_samples=1000000000 exceeds the maximum"),
        (dict(windw_stride=500), r"unknown setting\(s\) \['windw_stride'\]"),
    ],
)
def test_preprocessor_settings_are_checked(tiny_repo_copy, changes, match):
    path = tiny_repo_copy / "preprocessor_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    with pytest.raises(ECGConfigError, match=match) as info:
        ECGTaskClassifier.from_pretrained(tiny_repo_copy, tasks=["cpsc2018"])
    one_line_refusal(info)


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(target_modules="(unclosed"), r"target_modules='\(unclosed' is not a valid regular expression"),
        (dict(target_modules=[1, 2]), r"target_modules must be a module name pattern or a list of names"),
        (dict(encoder_fingerprint=["sha256:0"]), r"encoder_fingerprint must be a string"),
        (dict(encoder_signature="xresnet1d"), r"encoder_signature must be an object"),
        (dict(freeze_base_batchnorm="yes"), r"freeze_base_batchnorm must be true or false"),
        (dict(thresholds=[0.5, float("nan")] + [0.5] * 7),
         r"thresholds must be one probability in \[0, 1\] per label"),
    ],
)
def test_adapter_config_values_are_checked(tiny_repo_copy, changes, match):
    path = tiny_repo_copy / "cpsc2018" / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    with pytest.raises(AdapterConfigError, match=match) as info:
        ECGTaskClassifier.from_pretrained(tiny_repo_copy, tasks=["cpsc2018"])
    one_line_refusal(info)


# -- adapters of another encoder, pickle-only repositories ------------------------------------------------------------


def test_adapter_for_another_encoder_family_is_refused(tmp_path):
    """Width, depth and lead count are covered in test_lrc_adapter.py; here: another encoder family."""
    from peft import PeftModel

    tiny_peft_model("cinc2017").save_pretrained(tmp_path)
    with pytest.raises(AdapterMismatchError) as info:
        PeftModel.from_pretrained(tiny_classifier("resnet1d"), tmp_path / "cinc2017", adapter_name="cinc2017")
    message = str(info.value)
    assert "model_type: adapter 'xresnet1d' vs encoder 'resnet1d'" in message and "cinc2017" in message


def _to_pickle_checkpoint(folder: Path, safe_name: str, pickle_name: str) -> None:
    from safetensors.torch import load_file

    torch.save(load_file(folder / safe_name), folder / pickle_name)  # a real pickle written by torch.save
    (folder / safe_name).unlink()


def test_pickle_only_encoder_in_a_model_repo_is_refused(tiny_repo_copy):
    _to_pickle_checkpoint(tiny_repo_copy, "model.safetensors", "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match=r"pytorch_model\.bin.*allow_pickle=True") as info:
        ECGTaskClassifier.from_pretrained(tiny_repo_copy, tasks=["cinc2017"])
    one_line_refusal(info)
    trusted = ECGTaskClassifier.from_pretrained(tiny_repo_copy, tasks=["cinc2017"], allow_pickle=True)
    assert trusted.tasks == ["cinc2017"]


def test_pickle_adapter_is_refused_unless_allowed_and_then_predicts_the_same(tiny_repo, tiny_repo_copy, cpsc2018_dir):
    _to_pickle_checkpoint(tiny_repo_copy / "cinc2017", "adapter_model.safetensors", "adapter_model.bin")
    with pytest.raises(UnsafeCheckpointError) as info:
        ECGTaskClassifier.from_pretrained(tiny_repo_copy, tasks=["cinc2017"])
    message = one_line_refusal(info)
    assert "adapter_model.bin" in message and "allow_pickle=True" in message and "cinc2017" in message
    assert ECGTaskClassifier.from_pretrained(tiny_repo_copy, tasks=["cpsc2018"]).tasks == ["cpsc2018"]  # the other one
    trusted = ECGTaskClassifier.from_pretrained(tiny_repo_copy, tasks=["cinc2017"], allow_pickle=True)
    safe = ECGTaskClassifier.from_pretrained(tiny_repo, tasks=["cinc2017"])
    record = cpsc2018_dir / "A0001.hea"
    expected = safe.predict(record, task="cinc2017").probabilities
    assert (trusted.predict(record, task="cinc2017").probabilities == expected).all()
