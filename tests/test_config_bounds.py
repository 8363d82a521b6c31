"""Config bounds: every encoder config is checked against sane maxima before any module is built, and a
``config.json`` is checked against the size of its weights file before ``from_pretrained`` builds the model, so a
corrupt or hostile config fails in milliseconds with one line instead of hanging or exhausting memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from support.tiny import TINY_ENCODERS
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from tac_ecg_hf import ENCODER_FAMILIES, ENCODER_PRESETS, create_encoder_config
from tac_ecg_hf.models.encoders import ConfigFieldError

TINY = TINY_ENCODERS  # one definition of the tiny configs, shared by the test files (support/tiny.py)
#: time within which a refusal must come (they take milliseconds; the margin is for a loaded machine)
FAST = 2.0


def refused_quickly(build, match: str) -> str:
    start = time.perf_counter()
    with pytest.raises(ConfigFieldError, match=match) as info:
        build()
    elapsed = time.perf_counter() - start
    assert elapsed < FAST, f"refusal took {elapsed:.2f} s"
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message and len(message) < 600, message
    return message


# ----------------------------------------------------------------------------------------------------------------
# field bounds


@pytest.mark.parametrize(
    "family, overrides, match",
    [
        ("xresnet1d", dict(layers=[3, 4, 100_000, 3]), r"layers\[2\] must be an integer in \[1, 1,000\], got 100000"),
        ("xresnet1d", dict(layers=[300, 300, 300, 300]), r"give 1,200 blocks; at most 1,000"),
        ("xresnet1d", dict(layers=[1] * 1001), r"layers must be a list of 1 to 1,000 integers"),
        (  # 8,192 / expansion 2
            "xresnet1d",
            dict(block_widths=[65536, 64, 64, 64], layers=[3, 4, 23, 3]),
            r"block_widths\[0\] must be an integer in \[1, 4,096\]",
        ),
        ("xresnet1d", dict(stem_widths=[32, 32, 10_000]), r"stem_widths\[2\] must be an integer in \[1, 8,192\]"),
        ("xresnet1d", dict(kernel_size=257), r"kernel_size must be an odd integer in \[1, 255\], got 257"),
        ("xresnet1d", dict(expansion=0), r"expansion must be an integer in \[1, 64\]"),
        ("xresnet1d", dict(layers="3,4,23,3"), r"layers must be a list of 1 to 1,000 integers, got '3,4,23,3'"),
        ("resnet1d", dict(base_width=64, layers=[1] * 10), r"last stage of 32,768 channels; at most 8,192"),
        ("resnet1d", dict(stem_kernel_size=300), r"stem_kernel_size must be an odd integer in \[1, 255\]"),
        ("resnet1d", dict(layers=[2, 2.5]), r"layers\[1\] must be an integer"),
        ("inception1d", dict(depth=5000), r"depth must be an integer in \[1, 1,000\]"),
        ("inception1d", dict(kernel_sizes=[39, 19, 511]), r"kernel_sizes\[2\] must be an odd integer in \[1, 255\]"),
        ("inception1d", dict(num_filters=4096), r"num_filters must be an integer in \[1, 2,048\]"),
        ("fcn1d", dict(widths=[128, 100_000, 128]), r"widths\[1\] must be an integer in \[1, 8,192\]"),
        ("lstm1d", dict(hidden_size=100_000), r"hidden_size must be an integer in \[1, 8,192\]"),
        ("lstm1d", dict(num_layers=5000), r"num_layers must be an integer in \[1, 1,000\]"),
        ("lstm1d", dict(bidirectional="yes"), "bidirectional must be true or false"),
        ("ecg_transformer", dict(hidden_size=16384), r"hidden_size must be an integer in \[2, 8,192\]"),
        ("ecg_transformer", dict(num_attention_heads=4096, hidden_size=4096), r"num_attention_heads .* \[1, 1,024\]"),
        ("ecg_transformer", dict(num_hidden_layers=10_000), r"num_hidden_layers must be an integer in \[1, 1,000\]"),
        ("ecg_transformer", dict(intermediate_size=10**6), r"intermediate_size must be an integer in \[1, 32,768\]"),
        ("ecg_transformer", dict(stem_strides=[2, 64]), r"stem_strides\[1\] must be an integer in \[1, 16\]"),
        ("fcn1d", dict(num_samples=10**8), r"num_samples must be an integer in \[1, 10,000,000\]"),
        ("fcn1d", dict(in_channels=65, lead_names=None), r"in_channels must be an integer in \[1, 64\], got 65"),
        ("fcn1d", dict(sampling_rate=10**6), r"sampling_rate must be an integer in \[1, 100,000\]"),
        ("fcn1d", dict(num_labels=10_001), r"num_labels must be an integer in \[1, 10,000\], got 10001"),
        ("fcn1d", dict(num_labels=10**9), r"num_labels must be an integer in \[1, 10,000\]"),
        ("fcn1d", dict(classifier_dropout=1.5), r"classifier_dropout must be a number in \[0, 1\)"),
        ("fcn1d", dict(initializer_range=0), r"initializer_range must be a number in \(0, 1\]"),
    ],
)
def test_config_field_out_of_range(family, overrides, match):
    message = refused_quickly(lambda: create_encoder_config(family, **{**TINY[family], **overrides}), match)
    assert type(create_encoder_config(family)).__name__ in message  # names the config class


def test_id2label_with_too_many_labels_is_refused():
    id2label = {i: f"c{i}" for i in range(10_001)}
    refused_quickly(lambda: create_encoder_config("fcn1d", id2label=id2label), r"id2label has 10,001 labels")


def test_presets_and_maxima_are_accepted():
    for name in ENCODER_PRESETS:
        create_encoder_config(name, num_labels=10_000)
    create_encoder_config("xresnet1d", layers=[1] * 997, block_widths=[8] * 997, expansion=1)  # 997 + 3 stem = 1,000
    create_encoder_config("ecg_transformer", hidden_size=8192, num_attention_heads=1024, intermediate_size=32768)
    create_encoder_config("inception1d", kernel_sizes=[255, 1], num_filters=2730)


# ----------------------------------------------------------------------------------------------------------------
# the value count that check_checkpoint_size compares with the weights file


def _count(model) -> int:
    return sum(t.numel() for t in model.state_dict().values())


@pytest.mark.parametrize(
    "name, overrides",
    [(name, {}) for name in sorted(ENCODER_PRESETS)]
    + [(name, {"in_channels": 1}) for name in ("xresnet1d50", "inception1d", "transformer")]
    + [
        (
            "xresnet1d",
            dict(layers=[2, 1, 1], block_widths=[8, 16, 16], stem_widths=[4, 8], expansion=1, kernel_size=5),
        ),
        ("resnet1d", dict(layers=[1, 3], base_width=16, kernel_size=5, stem_kernel_size=3)),
        ("inception1d", dict(depth=4, residual_every=5, kernel_sizes=[5, 3], num_filters=3, bottleneck_size=6)),
        ("lstm1d", dict(hidden_size=8, num_layers=3, bidirectional=False)),
        ("ecg_transformer", dict(hidden_size=16, num_attention_heads=2, stem_strides=[1, 2, 2], intermediate_size=8)),
    ],
)
def test_expected_num_values_matches_the_built_model(name, overrides):
    config = create_encoder_config(name, **overrides)
    model_cls = ENCODER_FAMILIES[config.model_type][1]
    assert model_cls.expected_num_values(config) == _count(model_cls(config))


# ----------------------------------------------------------------------------------------------------------------
# config.json against its weights file


def _tiny_checkpoint(path, family="xresnet1d") -> dict:
    torch.manual_seed(0)
    ENCODER_FAMILIES[family][1](create_encoder_config(family, **TINY[family])).save_pretrained(path)
    return json.loads((path / "config.json").read_text())


@pytest.mark.parametrize("loader", [AutoModel, AutoModelForSequenceClassification, ENCODER_FAMILIES["xresnet1d"][1]])
def test_hostile_config_json_is_refused_before_building(tmp_path, loader):
    config = _tiny_checkpoint(tmp_path)
    config["layers"] = [3, 4, 100_000, 3]  # hung 240 s at 5.7 GB before the bounds
    config["block_widths"] = [8] * 4
    (tmp_path / "config.json").write_text(json.dumps(config))
    refused_quickly(lambda: loader.from_pretrained(tmp_path), r"layers\[2\] must be an integer in \[1, 1,000\]")
    refused_quickly(lambda: AutoConfig.from_pretrained(tmp_path), r"layers\[2\]")
    config["layers"], config["block_widths"] = [1, 1], [65536, 8]  # ended in MemoryError
    (tmp_path / "config.json").write_text(json.dumps(config))
    refused_quickly(lambda: loader.from_pretrained(tmp_path), r"block_widths\[0\] must be an integer")


@pytest.mark.parametrize(
    "changes",
    [
        dict(layers=[3, 4, 900, 3], block_widths=[64, 64, 64, 64]),  # 42M values from a 10 kB file
        dict(layers=[1, 1], block_widths=[2048, 2048], expansion=4),  # within bounds, 300M values
    ],
)
def test_config_json_larger_than_its_weights_is_refused(tmp_path, changes):
    config = _tiny_checkpoint(tmp_path)
    config.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(config))
    size = (tmp_path / "model.safetensors").stat().st_size
    for loader in (AutoModel, AutoModelForSequenceClassification):
        message = refused_quickly(
            lambda: loader.from_pretrained(tmp_path), r"implies an encoder of [\d,]+ values but model.safetensors"
        )
        assert f"has only {size:,} bytes" in message and str(tmp_path) in message


def test_size_check_accepts_real_checkpoints(tmp_path):
    """Encoder and classifier checkpoints, loaded either way, in float32 and float16, pass the check."""
    for family in TINY:
        torch.manual_seed(0)
        config = create_encoder_config(family, **TINY[family], num_labels=3)
        model = ENCODER_FAMILIES[family][2](config)
        model.save_pretrained(tmp_path / family / "cls")
        model.encoder.save_pretrained(tmp_path / family / "enc")
        model.half().save_pretrained(tmp_path / family / "fp16")
        for folder in ("cls", "enc", "fp16"):
            assert AutoModel.from_pretrained(tmp_path / family / folder) is not None
            path = tmp_path / family / folder
            assert AutoModelForSequenceClassification.from_pretrained(path, num_labels=3) is not None


_HOSTILE_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))  # 6 GB address space
    from transformers import AutoModelForSequenceClassification
    import tac_ecg_hf  # noqa: F401  (registers the encoders)
    from tac_ecg_hf.models.encoders import ConfigFieldError
    start = time.perf_counter()
    try:
        AutoModelForSequenceClassification.from_pretrained(sys.argv[1])
    except ConfigFieldError as err:
        print(json.dumps({"error": str(err), "seconds": time.perf_counter() - start}))
    else:
        raise SystemExit("loaded a hostile config")
    """
)


@pytest.mark.parametrize(
    "changes",
    [
        dict(layers=[3, 4, 100_000, 3], block_widths=[8] * 4),
        dict(block_widths=[65536, 8]),
        dict(layers=[3, 4, 900, 3], block_widths=[64] * 4),
    ],
    ids=["deep", "wide", "larger-than-weights"],
)
def test_hostile_config_under_a_memory_limit(tmp_path, changes):
    """In a fresh process limited to 6 GB of address space, each hostile config.json fails with ConfigFieldError
    (not MemoryError, not a hang)."""
    config = _tiny_checkpoint(tmp_path / "model")
    config.update(changes)
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    (tmp_path / "load.py").write_text(_HOSTILE_SCRIPT)
    env = {**os.environ, "TAC_ECG_NO_CACHE_SEED": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "load.py"), str(tmp_path / "model")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["seconds"] < FAST and "\n" not in result["error"]
