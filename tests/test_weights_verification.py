"""Verified weights: encoders and task adapters load only when every tensor of the file lands in the model, every
adapter/head module gets its tensors, shapes agree, and (for adapters) the encoder is the one they were trained on.
Pickle files only on request, through torch's weights-only unpickler. Atomic saves. Tiny random models only."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from support.tiny import randomise_adapters, tiny_cetp, tiny_classifier
from torch import nn

from tac_ecg_hf import LRCConfig
from tac_ecg_hf.adapters.fingerprint import encoder_fingerprint, encoder_state_dict
from tac_ecg_hf.adapters.lrc import LRCLayer
from tac_ecg_hf.models.encoders import ENCODER_FAMILIES
from tac_ecg_hf.safety import (
    AdapterConfigError,
    AdapterMismatchError,
    CheckpointFileError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    atomic_save_pretrained,
    load_encoder,
    load_task_adapter,
    replace_dir,
)

#: the package's exception types for bad files (the CLI maps them to exit status 2)
PACKAGE_ERRORS = (
    AdapterMismatchError, AdapterConfigError, CheckpointFileError, CheckpointMismatchError, UnsafeCheckpointError
)
classifier = tiny_classifier


def make_repo(root: Path, family: str = "xresnet1d", seed: int = 0, task: str = "cinc2017") -> Path:
    """A model repository as ECGTaskClassifier loads it: the encoder at ``root``, the adapter in ``root/<task>/``."""
    model = classifier(family, seed)
    model.encoder.save_pretrained(root)
    peft_model = get_peft_model(model, LRCConfig.for_task(task, r=2), adapter_name=task)
    randomise_adapters(peft_model)
    peft_model.save_pretrained(root)
    return root


def fresh_encoder(root: Path, family: str = "xresnet1d"):
    return load_encoder(root, ENCODER_FAMILIES[family][2], num_labels=4)


def edit_config(folder: Path, **changes) -> None:
    path = folder / "adapter_config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def assert_one_line_package_error(info) -> str:
    message = str(info.value)
    assert isinstance(info.value, PACKAGE_ERRORS), type(info.value)
    assert isinstance(info.value, (ValueError, OSError))
    assert "\n" not in message and len(message) < 1000, message
    return message


def lrc_layers(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, LRCLayer)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("repo") / "model")


@pytest.fixture
def repo_copy(repo, tmp_path):
    shutil.copytree(repo, tmp_path / "model")
    return tmp_path / "model"


# ----------------------------------------------------------------------------------------------------------------
# fingerprint


def test_fingerprint_names_the_encoder_weights_only():
    model = classifier()
    fingerprint = encoder_fingerprint(model)
    assert fingerprint.startswith("sha256:") and len(fingerprint) == len("sha256:") + 64
    assert encoder_fingerprint(model.encoder) == fingerprint  # bare encoder == classifier's encoder
    assert encoder_fingerprint(classifier()) == fingerprint  # deterministic
    with torch.no_grad():
        model.head.classifier.weight.add_(1.0)  # the head is not part of it
    assert encoder_fingerprint(model) == fingerprint
    peft_model = get_peft_model(model, LRCConfig.for_task("cinc2017", r=2), adapter_name="t")
    randomise_adapters(peft_model)
    assert encoder_fingerprint(peft_model) == fingerprint  # injected adapters are not either
    with torch.no_grad():
        peft_model.get_base_model().encoder.stem[0].conv.weight[0, 0, 0] += 1e-3  # one encoder value
    assert encoder_fingerprint(peft_model) != fingerprint


def test_fingerprint_is_computed_on_float32_values():
    """Documented: a float16 copy has the fingerprint of its rounded values, not of the float32 original."""
    model = classifier().encoder
    rounded = classifier().encoder.half().float()
    assert encoder_fingerprint(rounded) == encoder_fingerprint(rounded.half())  # cast to float32 before hashing
    assert encoder_fingerprint(rounded) != encoder_fingerprint(model)


def test_encoder_state_dict_sees_through_injected_layers():
    model = classifier()
    names = set(model.encoder.state_dict())
    peft_model = get_peft_model(model, LRCConfig.for_task("cinc2017", r=2), adapter_name="t")
    assert set(encoder_state_dict(peft_model)) == names


# ----------------------------------------------------------------------------------------------------------------
# adapters: loading that works


def test_load_task_adapter_round_trip(repo):
    reference = PeftModel.from_pretrained(fresh_encoder(repo), repo / "cinc2017", adapter_name="cinc2017")
    loaded = load_task_adapter(fresh_encoder(repo), repo / "cinc2017", "cinc2017")
    assert isinstance(loaded, PeftModel) and loaded.active_adapters == ["cinc2017"]
    assert not any(p.requires_grad for p in loaded.parameters())  # inference mode by default
    x = torch.randn(2, 12, 128)
    with torch.no_grad():
        assert torch.equal(loaded(input_values=x).logits, reference.eval()(input_values=x).logits)
    saved = json.loads((repo / "cinc2017" / "adapter_config.json").read_text())
    assert saved["encoder_fingerprint"] == encoder_fingerprint(fresh_encoder(repo))


def test_second_adapter_through_load_task_adapter(repo, tmp_path):
    model = classifier(num_labels=9)
    model.encoder.load_state_dict(fresh_encoder(repo).encoder.state_dict())
    peft_model = get_peft_model(model, LRCConfig.for_task("cpsc2018", r=2), adapter_name="cpsc2018")
    peft_model.save_pretrained(tmp_path)
    loaded = load_task_adapter(fresh_encoder(repo), repo / "cinc2017", "cinc2017")
    assert load_task_adapter(loaded, tmp_path / "cpsc2018", "cpsc2018") is loaded
    assert set(loaded.peft_config) == {"cinc2017", "cpsc2018"}
    with pytest.raises(ValueError, match="already has an adapter named 'cpsc2018'"):
        load_task_adapter(loaded, tmp_path / "cpsc2018", "cpsc2018")


def test_adapter_without_fingerprint_falls_back_to_signature_and_shapes(repo_copy):
    """Adapters saved before the fingerprint existed still load on the right encoder (their signature and tensor
    shapes match) and are still refused on another architecture."""
    folder = repo_copy / "cinc2017"
    edit_config(folder, encoder_fingerprint=None)
    loaded = load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017")
    assert loaded.peft_config["cinc2017"].encoder_fingerprint is None
    other = classifier(layers=[1, 2])
    with pytest.raises(AdapterMismatchError) as info:
        load_task_adapter(other, folder, "cinc2017")
    assert "layers: adapter [1, 1] vs encoder [1, 2]" in assert_one_line_package_error(info)


# ----------------------------------------------------------------------------------------------------------------
# adapters: refusals, each one line of a package error type, leaving the model as it was


def test_foreign_adapter_with_pasted_signature_is_refused(tmp_path):
    """A resnet1d adapter copied into an xresnet1d repository, its encoder_signature edited to the xresnet's: the
    fingerprint gives it away; without a fingerprint, its tensors find no modules."""
    xres = make_repo(tmp_path / "xres", "xresnet1d")
    res = make_repo(tmp_path / "res", "resnet1d")
    foreign = xres / "foreign"
    shutil.copytree(res / "cinc2017", foreign)
    xres_config = json.loads((xres / "cinc2017" / "adapter_config.json").read_text())
    xres_signature = xres_config["encoder_signature"]
    edit_config(foreign, encoder_signature=xres_signature)
    model = fresh_encoder(xres)
    with pytest.raises(AdapterMismatchError) as info:
        load_task_adapter(model, foreign, "foreign")
    assert "trained on encoder weights sha256:" in assert_one_line_package_error(info)
    assert not lrc_layers(model)
    edit_config(foreign, encoder_fingerprint=None)
    with pytest.raises(AdapterMismatchError) as info:
        load_task_adapter(model, foreign, "foreign")
    assert "match no module" in assert_one_line_package_error(info)
    assert not lrc_layers(model) and not hasattr(model, "peft_config")


def test_target_modules_that_match_nothing_are_refused(repo_copy):
    folder = repo_copy / "cinc2017"
    edit_config(folder, target_modules=["nothing.here"])
    model = fresh_encoder(repo_copy)
    with pytest.raises(AdapterMismatchError) as info:
        load_task_adapter(model, folder, "cinc2017")
    assert "match no module" in assert_one_line_package_error(info)
    assert not lrc_layers(model)


def test_target_modules_that_match_part_of_the_file_are_refused(repo_copy):
    """target_modules narrowed to the stem: the file's block adapters would be dropped silently by PEFT."""
    folder = repo_copy / "cinc2017"
    edit_config(folder, target_modules=r"encoder\.stem\.\d+\.bn")
    model = fresh_encoder(repo_copy)
    with pytest.raises(AdapterMismatchError) as info:
        load_task_adapter(model, folder, "cinc2017")
    message = assert_one_line_package_error(info)
    assert "tensor(s) of the file have no place in the model" in message and "convpath" in message
    assert not lrc_layers(model)  # rolled back


def test_label_count_that_differs_from_the_head_weights_is_refused(repo_copy):
    folder = repo_copy / "cinc2017"
    edit_config(folder, labels=["N", "A", "O", "~", "X"])
    with pytest.raises(AdapterMismatchError) as info:
        load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017")
    message = assert_one_line_package_error(info)
    assert "2 shape(s) differ (head.classifier.lrc_head.bias: file (4,) vs model (5,) and 1 more)" in message


def test_rank_that_differs_from_the_weights_is_refused(repo_copy):
    folder = repo_copy / "cinc2017"
    edit_config(folder, r=4)  # the weights have rank 2
    with pytest.raises(AdapterMismatchError) as info:
        load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017")
    assert "shape(s) differ" in assert_one_line_package_error(info)


def test_adapter_tensor_missing_from_the_file_is_refused(repo_copy):
    folder = repo_copy / "cinc2017"
    weights = load_file(folder / "adapter_model.safetensors")
    dropped = sorted(k for k in weights if "lrc_up" in k)[0]
    del weights[dropped]
    save_file(weights, folder / "adapter_model.safetensors")
    with pytest.raises(AdapterMismatchError) as info:
        load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017")
    message = assert_one_line_package_error(info)
    assert "1 adapter tensor(s) get no value from the file" in message
    assert dropped.removeprefix("base_model.model.") in message


def test_truncated_adapter_weights_are_refused(repo_copy):
    path = repo_copy / "cinc2017" / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    model = fresh_encoder(repo_copy)
    with pytest.raises(CheckpointFileError) as info:
        load_task_adapter(model, path.parent, "cinc2017")
    assert "truncated or corrupt" in assert_one_line_package_error(info)
    assert not lrc_layers(model)


@pytest.mark.parametrize(
    "content, match",
    [
        ("[1, 2, 3]", "holds a JSON list, not an object"),
        ("{not json", "is not valid JSON"),
        ('{"r": 2}', "has no peft_type"),
        ('{"peft_type": "NOT_A_METHOD"}', "is not a valid adapter config"),
    ],
)
def test_malformed_adapter_config_is_refused(repo_copy, content, match):
    folder = repo_copy / "cinc2017"
    (folder / "adapter_config.json").write_text(content)
    with pytest.raises(AdapterConfigError, match=match) as info:
        load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017")
    assert_one_line_package_error(info)


def test_adapter_config_with_out_of_range_values_is_refused(repo_copy):
    folder = repo_copy / "cinc2017"
    edit_config(folder, r=100_000)
    with pytest.raises(AdapterConfigError, match=r"r must be an integer in \[1, 1024\]") as info:
        load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017")
    assert_one_line_package_error(info)


def test_missing_adapter_files_are_refused(repo_copy, tmp_path):
    with pytest.raises(CheckpointFileError, match="has no adapter_config.json") as info:
        load_task_adapter(fresh_encoder(repo_copy), tmp_path, "x")
    assert_one_line_package_error(info)
    (repo_copy / "cinc2017" / "adapter_model.safetensors").unlink()
    with pytest.raises(CheckpointFileError, match="has no adapter weights"):
        load_task_adapter(fresh_encoder(repo_copy), repo_copy / "cinc2017", "cinc2017")


def test_failed_second_adapter_leaves_the_first_in_place(repo, repo_copy):
    loaded = load_task_adapter(fresh_encoder(repo), repo / "cinc2017", "cinc2017")
    x = torch.randn(2, 12, 128)
    with torch.no_grad():
        before = loaded(input_values=x).logits
    folder = repo_copy / "cinc2017"
    edit_config(folder, r=4)
    with pytest.raises(AdapterMismatchError):
        load_task_adapter(loaded, folder, "other")
    assert set(loaded.peft_config) == {"cinc2017"} and loaded.active_adapters == ["cinc2017"]
    with torch.no_grad():
        assert torch.equal(loaded(input_values=x).logits, before)


# ----------------------------------------------------------------------------------------------------------------
# pickle files


class _NotATensor:
    """Pickles to a call of a global: what torch's weights-only unpickler refuses (a real payload would run code)."""

    def __reduce__(self):
        return (os.getcwd, ())


def _to_pickle(folder: Path, safe_name: str, pickle_name: str) -> None:
    torch.save(load_file(folder / safe_name), folder / pickle_name)
    (folder / safe_name).unlink()


def test_pickle_adapter_only_on_request_and_weights_only(repo, repo_copy):
    folder = repo_copy / "cinc2017"
    _to_pickle(folder, "adapter_model.safetensors", "adapter_model.bin")
    with pytest.raises(UnsafeCheckpointError) as info:
        load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017")
    message = assert_one_line_package_error(info)
    assert "adapter_model.bin" in message and "allow_pickle=True" in message
    trusted = load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017", allow_pickle=True)
    safe = load_task_adapter(fresh_encoder(repo), repo / "cinc2017", "cinc2017")
    x = torch.randn(2, 12, 128)
    with torch.no_grad():
        assert torch.equal(trusted(input_values=x).logits, safe(input_values=x).logits)
    torch.save({"base_model.model.x": _NotATensor()}, folder / "adapter_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="refused by torch's weights-only unpickler") as info:
        load_task_adapter(fresh_encoder(repo_copy), folder, "cinc2017", allow_pickle=True)
    assert_one_line_package_error(info)


def test_pickle_encoder_only_on_request_and_weights_only(tmp_path):
    model = classifier()
    model.encoder.save_pretrained(tmp_path)
    _to_pickle(tmp_path, "model.safetensors", "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError) as info:
        load_encoder(tmp_path)
    message = assert_one_line_package_error(info)
    assert "pytorch_model.bin" in message and "allow_pickle=True" in message and str(tmp_path) in message
    loaded = load_encoder(tmp_path, ENCODER_FAMILIES["xresnet1d"][1], allow_pickle=True)
    x = torch.randn(2, 12, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x).pooler_output, model.encoder(x).pooler_output)
    torch.save({"stem.0.conv.weight": _NotATensor()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="weights-only unpickler") as info:
        load_encoder(tmp_path, allow_pickle=True)
    assert_one_line_package_error(info)


# ----------------------------------------------------------------------------------------------------------------
# encoders


def test_load_encoder_accepts_encoder_and_classifier_checkpoints(tmp_path):
    """The head is the one allowed difference: a classifier gets a new head on an encoder checkpoint, a bare
    encoder drops the head of a classifier checkpoint."""
    model = classifier()
    model.encoder.save_pretrained(tmp_path / "encoder")
    model.save_pretrained(tmp_path / "classifier")
    x = torch.randn(2, 12, 128)
    with torch.no_grad():
        features = model.encoder(x).pooler_output
        for path in (tmp_path / "encoder", tmp_path / "classifier"):
            cls_model = load_encoder(path, num_labels=4)
            bare = load_encoder(path, ENCODER_FAMILIES["xresnet1d"][1])
            assert torch.equal(cls_model.encoder(x).pooler_output, features)
            assert torch.equal(bare(x).pooler_output, features)
            assert next(bare.parameters()).dtype == torch.float32
        assert torch.equal(load_encoder(tmp_path / "classifier")(x).logits, model(x).logits)


def test_encoder_checkpoint_with_foreign_tensors_is_refused(tmp_path):
    model = classifier()
    model.encoder.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["stages.5.0.convpath.0.conv.weight"] = torch.zeros(8, 8, 1)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError) as info:
        load_encoder(tmp_path)
    message = assert_one_line_package_error(info)
    assert "1 tensor(s) of the file have no place in the model (stages.5.0.convpath.0.conv.weight)" in message


def test_encoder_checkpoint_missing_tensors_is_refused(tmp_path):
    model = classifier()
    model.encoder.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["stem.1.bn.running_var"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError) as info:
        load_encoder(tmp_path, ENCODER_FAMILIES["xresnet1d"][1])
    message = assert_one_line_package_error(info)
    assert "1 model tensor(s) get no value from the file (stem.1.bn.running_var)" in message


def test_encoder_checkpoint_with_other_shapes_is_refused(tmp_path):
    classifier(stem_widths=[8, 8, 16]).encoder.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["stem_widths"] = [8, 8, 8]  # the config no longer describes the weights
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError) as info:
        load_encoder(tmp_path, ENCODER_FAMILIES["xresnet1d"][1])
    assert "shape(s) differ" in assert_one_line_package_error(info)


def test_truncated_encoder_weights_are_refused(tmp_path):
    classifier().encoder.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.9)])
    with pytest.raises(CheckpointFileError) as info:
        load_encoder(tmp_path)
    assert "truncated or corrupt" in assert_one_line_package_error(info)


# ----------------------------------------------------------------------------------------------------------------
# atomic saves


def test_replace_dir_swaps_a_non_empty_folder(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "a.txt").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "b.txt").write_text("new")
    replace_dir(tmp_path / "new", tmp_path / "old")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # nothing left aside


def test_replace_dir_puts_the_old_folder_back_when_the_move_fails(tmp_path, monkeypatch):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "a.txt").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name == "missing":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        replace_dir(tmp_path / "missing", tmp_path / "target")
    assert (tmp_path / "target" / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_atomic_save_records_the_encoder_at_save_time(tmp_path):
    model = classifier()
    peft_model = get_peft_model(model, LRCConfig.for_task("cinc2017", r=2), adapter_name="cinc2017")
    with torch.no_grad():
        peft_model.get_base_model().encoder.stem[0].conv.weight.mul_(2.0)  # the encoder changed after creation
    atomic_save_pretrained(peft_model, tmp_path)
    saved = json.loads((tmp_path / "cinc2017" / "adapter_config.json").read_text())
    assert saved["encoder_fingerprint"] == encoder_fingerprint(peft_model)
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


def test_pickle_cetp_checkpoint_through_load_encoder(tmp_path):
    """The same policy for the CETP dual encoder (tiny random BERT text tower)."""
    from tac_ecg_hf import CETPModel

    tiny_cetp().save_pretrained(tmp_path)
    assert isinstance(load_encoder(tmp_path, CETPModel), CETPModel)  # safetensors, every tensor in place
    _to_pickle(tmp_path, "model.safetensors", "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match=r"pytorch_model\.bin.*allow_pickle=True") as info:
        load_encoder(tmp_path, CETPModel)
    assert_one_line_package_error(info)
    assert isinstance(load_encoder(tmp_path, CETPModel, allow_pickle=True), CETPModel)
