"""Unit tests of the LRC-Adapter PEFT method (serial TAC-ECG variant, parallel mergeable variant, task heads)."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from support.tiny import TINY_ENCODERS
from torch import nn
from torch.nn import functional as F

from tac_ecg_hf import AdapterMismatchError, LRCConfig, create_encoder_config, get_task
from tac_ecg_hf.adapters.batchnorm import freeze_batchnorm_statistics, has_frozen_batchnorm_statistics
from tac_ecg_hf.adapters.lrc import (
    TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING,
    LRCHead,
    LRCLayer,
    LRCModel,
    LRCParallel,
    LRCSerial,
)
from tac_ecg_hf.models.encoders import ENCODER_FAMILIES, ENCODER_PRESETS

TINY = TINY_ENCODERS  # support/tiny.py
XRES_TINY = TINY_ENCODERS["xresnet1d"]
LENGTH = 128
FAMILIES = sorted(TINY)
#: families with convolutions (the parallel variant needs them)
CONV_FAMILIES = [f for f in FAMILIES if "parallel" in TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING[f]]


def base_model(family: str = "xresnet1d", seed: int = 0, num_labels: int = 5, randomise_bn: bool = True, **overrides):
    """A tiny classifier with non-trivial BatchNorm statistics (as a pre-trained encoder has)."""
    torch.manual_seed(seed)
    config = create_encoder_config(family, **{**TINY[family], **overrides}, num_labels=num_labels)
    model = ENCODER_FAMILIES[family][2](config)
    if randomise_bn:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm1d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.1, 0.1)
    return model.eval()


def inputs(n: int = 4, leads: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, leads, LENGTH, generator=torch.Generator().manual_seed(seed))


def randomise_adapters(model: nn.Module, std: float = 0.1, seed: int = 5) -> None:
    """Make every adapter weight non-zero (a trained adapter), so that equalities are not trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lrc_" in name:
                param.copy_(torch.randn(param.shape, generator=g) * std)


def lrc_modules(model: nn.Module, cls=LRCLayer) -> dict:
    return {name: m for name, m in model.named_modules() if isinstance(m, cls)}


def bn_state(model: nn.Module) -> dict:
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


# ----------------------------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------------------------


def test_config_for_task_and_validation():
    config = LRCConfig.for_task("cinc2017", r=4)
    assert config.peft_type == "LRC_ADAPTER"
    assert config.labels == ["N", "A", "O", "~"] and config.problem_type == "single_label_classification"
    assert config.task_name == "cinc2017" and config.scaling == 1.0
    assert LRCConfig(r=4, alpha=8).scaling == 2.0
    with pytest.raises(KeyError, match="Unknown task"):
        LRCConfig.for_task("mitbih-42")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(variant="sideways"), "variant"),
        (dict(r=0), r"r must be an integer in \[1, 1024\], got 0"),
        (dict(r=4096), r"r must be an integer in \[1, 1024\], got 4096"),
        (dict(r=2.5), "r must be an integer"),
        (dict(alpha=-1), "alpha must be a positive number"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (dict(dropout=-0.1), r"dropout must be a number in \[0, 1\)"),
        (dict(problem_type="regression"), "problem_type"),
        (dict(labels=["a", "a"]), "unique"),
        (dict(labels=[]), r"1 to 10,000 class names, got 0"),
        (dict(labels=[f"c{i}" for i in range(10_001)]), r"1 to 10,000 class names, got 10,001"),
        (dict(labels="abc"), "list of class names"),
        (dict(kernel_sizes=[3, 0]), "kernel_sizes must be a list of integers"),
        (dict(head_module=""), "head_module"),
    ],
)
def test_config_values_out_of_range_raise_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        LRCConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_rank_wider_than_the_adapted_layer_is_refused():
    base = base_model()  # the tiny xresnet's narrowest adapted BatchNorm has 8 channels
    with pytest.raises(ValueError, match=r"r=16 exceeds the width 8 of encoder\.stem\.0\.bn") as err:
        get_peft_model(base, LRCConfig.for_task("ptbxl-super", r=16), adapter_name="t")
    assert "\n" not in str(err.value)
    assert not lrc_modules(base)  # refused before any module was replaced


# ----------------------------------------------------------------------------------------------------------------
# serial variant (TAC-ECG)
# ----------------------------------------------------------------------------------------------------------------


def test_trainable_ratio_on_xresnet1d101():
    torch.manual_seed(0)
    model = ENCODER_FAMILIES["xresnet1d"][2](create_encoder_config("xresnet1d101", num_labels=5))
    peft_model = get_peft_model(model, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert 0.01 < trainable / total < 0.05, (trainable, total)
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert names and all("lrc_" in n for n in names)
    serial = lrc_modules(peft_model, LRCSerial)
    # after the stem BatchNorms and the BatchNorm after each block's kernel-3 conv: 3 + (3 + 4 + 23 + 3)
    assert len(serial) == 3 + 33
    assert all(isinstance(m.get_base_layer(), nn.BatchNorm1d) for m in serial.values())
    assert len(lrc_modules(peft_model, LRCHead)) == 1


@pytest.mark.parametrize("preset", sorted(ENCODER_PRESETS))
def test_default_adapter_is_a_few_percent_of_every_preset(preset):
    """TAC-ECG on every encoder family: rank 8 with a 5-class head trains 1.5-5% of the parameters."""
    torch.manual_seed(0)
    config = create_encoder_config(preset, num_labels=5)
    model = ENCODER_FAMILIES[config.model_type][2](config)
    peft_model = get_peft_model(model, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert 0.015 < trainable / total < 0.05, (preset, trainable, total)
    assert len(lrc_modules(peft_model, LRCSerial)) >= 2


def test_target_module_mapping_is_used_like_peft_lora():
    """LRCModel reads the defaults from TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING (the variant picks the
    pattern), on the bare encoder as on the classifier (whose encoder sits under 'encoder.')."""
    assert LRCModel.target_module_mapping is TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING
    assert set(TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING) == set(ENCODER_FAMILIES)
    for family in FAMILIES:
        classifier = get_peft_model(base_model(family), LRCConfig.for_task("ptbxl-super"), adapter_name="t")
        torch.manual_seed(0)
        bare = get_peft_model(ENCODER_FAMILIES[family][1](classifier.config), LRCConfig(), adapter_name="t")
        in_classifier = {n.removeprefix("base_model.model.encoder.") for n in lrc_modules(classifier, LRCSerial)}
        in_bare = {n.removeprefix("base_model.model.") for n in lrc_modules(bare, LRCSerial)}
        assert in_classifier == in_bare and in_bare, family
        assert not lrc_modules(bare, LRCHead)  # a bare encoder gets a feature adapter without a head
        assert bare.peft_config["t"].head_module is None
        saved = classifier.peft_config["t"].target_modules  # the family's pattern plus the head
        assert TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING[family]["serial"] in saved and "head" in saved


def test_create_new_module_dispatches_on_the_target_type():
    serial, parallel = LRCConfig(r=2), LRCConfig(r=2, variant="parallel")
    assert isinstance(LRCModel._create_new_module(serial, "t", nn.BatchNorm1d(4), "bn"), LRCSerial)
    assert isinstance(LRCModel._create_new_module(serial, "t", nn.LayerNorm(4), "norm"), LRCSerial)
    assert isinstance(LRCModel._create_new_module(serial, "t", nn.LSTM(3, 4, batch_first=True), "lstm"), LRCSerial)
    assert isinstance(LRCModel._create_new_module(parallel, "t", nn.Conv1d(4, 4, 3), "conv"), LRCParallel)
    assert isinstance(LRCModel._create_new_module(serial, "t", nn.Linear(4, 2), "head.classifier"), LRCHead)
    with pytest.raises(ValueError, match=r"LRC-Adapter \(serial\) cannot adapt 'conv' \(Conv1d\)"):
        LRCModel._create_new_module(serial, "t", nn.Conv1d(4, 4, 3), "conv")
    with pytest.raises(ValueError, match=r"\(parallel\) cannot adapt 'bn' \(BatchNorm1d\)"):
        LRCModel._create_new_module(parallel, "t", nn.BatchNorm1d(4), "bn")


def test_serial_adapter_on_channel_last_layers():
    """After a LayerNorm the bottleneck acts on the last dim; after an LSTM on its output, the state passes through."""
    torch.manual_seed(0)
    config = LRCConfig(r=2)
    norm = LRCModel._create_new_module(config, "t", nn.LayerNorm(6), "norm")
    lstm = LRCModel._create_new_module(config, "t", nn.LSTM(3, 4, batch_first=True, bidirectional=True), "lstm")
    assert isinstance(norm.lrc_down["t"], nn.Linear) and norm.lrc_down["t"].in_features == 6
    assert lstm.lrc_down["t"].in_features == 8  # both directions
    randomise_adapters(norm)
    randomise_adapters(lstm)
    x = torch.randn(2, 5, 6)
    with torch.no_grad():
        y = norm.get_base_layer()(x)
        expected = y + norm.lrc_up["t"](torch.relu(norm.lrc_down["t"](y)))
        assert torch.allclose(norm(x), expected)
        seq = torch.randn(2, 5, 3)
        out, (h, c) = lstm.get_base_layer()(seq)
        adapted, (h2, c2) = lstm(seq)
        assert torch.allclose(adapted, out + lstm.lrc_up["t"](torch.relu(lstm.lrc_down["t"](out))))
        assert torch.equal(h, h2) and torch.equal(c, c2)


def test_zero_init_keeps_base_function():
    base = base_model()
    x = inputs()
    with torch.no_grad():
        ref_features = base.encoder(x).pooler_output
        ref_hidden = base.encoder(x).last_hidden_state
        base_head = base.head.classifier.weight.clone()
    peft_model = get_peft_model(base, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super").eval()
    encoder = peft_model.base_model.model.encoder
    with torch.no_grad():
        out = encoder(x)
        logits = peft_model(input_values=x).logits
    assert torch.equal(out.pooler_output, ref_features)
    assert torch.equal(out.last_hidden_state, ref_hidden)
    # the task gets its own new head on top of the unchanged features
    head = peft_model.base_model.model.head.classifier
    assert isinstance(head, LRCHead)
    task_head = head.lrc_head["ptbxl-super"]
    assert torch.allclose(logits, F.linear(ref_features, task_head.weight, task_head.bias), atol=1e-6)
    assert not torch.equal(task_head.weight, base_head)
    for module in lrc_modules(peft_model, LRCSerial).values():
        assert torch.all(module.lrc_up["ptbxl-super"].weight == 0)


def test_base_batchnorm_frozen_during_training():
    base = base_model()
    peft_model = get_peft_model(base, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    before = bn_state(peft_model)
    up_before = {n: p.clone() for n, p in peft_model.named_parameters() if "lrc_up" in n}
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    x, labels = inputs(), torch.randint(0, 2, (4, 5)).float()
    for _ in range(3):
        peft_model.train()  # what Trainer does before each step
        out = peft_model(input_values=x, labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    bns = [m for m in peft_model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert bns and not any(m.training for m in bns)  # the hook put them back in eval mode before they ran
    assert peft_model.base_model.model.head.training  # the rest is in train mode (dropout)
    after = bn_state(peft_model)
    assert before.keys() == after.keys() and len(before) > 0
    for key in before:
        assert torch.equal(before[key], after[key]), key
    # the adapters did learn
    assert any(not torch.equal(p, up_before[n]) for n, p in peft_model.named_parameters() if "lrc_up" in n)


def test_batchnorm_not_frozen_when_disabled_in_config():
    peft_model = get_peft_model(
        base_model(), LRCConfig.for_task("ptbxl-super", freeze_base_batchnorm=False), adapter_name="ptbxl-super"
    )
    before = bn_state(peft_model)
    peft_model.train()
    with torch.no_grad():
        peft_model(input_values=inputs())
    assert all(m.training for m in peft_model.modules() if isinstance(m, nn.BatchNorm1d))
    assert any(not torch.equal(v, bn_state(peft_model)[k]) for k, v in before.items())


def test_one_batchnorm_freeze_mechanism_for_lrc_lora_and_linear_probe():
    """training.freeze_batchnorm_statistics is the adapters' function; it keeps frozen BatchNorms of any model in
    eval mode, leaves trained ones alone, and can be undone."""
    from tac_ecg_hf import training

    assert training.freeze_batchnorm_statistics is freeze_batchnorm_statistics
    model = base_model("resnet1d")
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith("head.") or name == "encoder.stem.bn.weight"  # one BN still trained
    assert freeze_batchnorm_statistics(model) == sum(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    assert freeze_batchnorm_statistics(model) > 0  # idempotent
    before = bn_state(model)
    model.train()
    with torch.no_grad():
        model(inputs())
    after = bn_state(model)
    assert not torch.equal(before["encoder.stem.bn.running_mean"], after["encoder.stem.bn.running_mean"])
    frozen = [k for k in before if not k.startswith("encoder.stem.bn.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    copied = copy.deepcopy(model)  # the setting travels with the model
    assert all(has_frozen_batchnorm_statistics(m) for m in copied.modules() if isinstance(m, nn.BatchNorm1d))
    freeze_batchnorm_statistics(model, freeze=False)
    assert not any(has_frozen_batchnorm_statistics(m) for m in model.modules())
    before = bn_state(model)
    model.train()
    with torch.no_grad():
        model(inputs())
    assert all(not torch.equal(before[k], bn_state(model)[k]) for k in frozen if k.endswith("running_mean"))


def test_multi_task_save_load_switch_round_trip(tmp_path):
    base = base_model()
    base.save_pretrained(tmp_path / "base")
    tasks = ["ptbxl-super", "cinc2017", "cpsc2018"]
    x = inputs()
    peft_model = get_peft_model(base, LRCConfig.for_task(tasks[0]), adapter_name=tasks[0])
    for task in tasks[1:]:
        peft_model.add_adapter(task, LRCConfig.for_task(task))
    # adding adapters does not change the active task's labels or loss
    assert peft_model.active_adapters == [tasks[0]]
    assert peft_model.config.problem_type == "multi_label_classification"
    randomise_adapters(peft_model)
    peft_model.eval()

    reference = {}
    for task in tasks:
        peft_model.set_adapter(task)
        spec = get_task(task)
        assert peft_model.config.problem_type == spec.problem_type
        assert peft_model.config.id2label == spec.id2label
        assert peft_model.config.label2id == spec.label2id
        with torch.no_grad():
            reference[task] = peft_model(input_values=x).logits
        assert reference[task].shape == (4, spec.num_labels)
    peft_model.save_pretrained(tmp_path / "adapters")

    # files: safetensors only, one folder per task, config with the PEFT type, task and labels
    assert not list((tmp_path / "adapters").rglob("*.bin"))
    for task in tasks:
        folder = tmp_path / "adapters" / task
        assert (folder / "adapter_model.safetensors").exists()
        saved = json.loads((folder / "adapter_config.json").read_text())
        assert saved["peft_type"] == "LRC_ADAPTER"
        assert saved["task_name"] == task
        assert saved["labels"] == list(get_task(task).labels)
        assert saved["problem_type"] == get_task(task).problem_type
        assert saved["encoder_signature"]["model_type"] == "xresnet1d"

    # reload on a fresh copy of the base model
    fresh = ENCODER_FAMILIES["xresnet1d"][2].from_pretrained(tmp_path / "base").eval()
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapters" / tasks[0], adapter_name=tasks[0])
    for task in tasks[1:]:
        loaded.load_adapter(tmp_path / "adapters" / task, adapter_name=task)
    assert loaded.active_adapters == [tasks[0]]
    assert loaded.config.problem_type == "multi_label_classification"  # loading others keeps the active task
    assert not any(p.requires_grad for p in loaded.parameters())  # inference mode
    loaded.eval()
    for task in tasks[::-1] + tasks:  # switch back and forth
        loaded.set_adapter(task)
        assert loaded.config.problem_type == get_task(task).problem_type
        assert loaded.config.id2label == get_task(task).id2label
        with torch.no_grad():
            assert torch.equal(loaded(input_values=x).logits, reference[task]), task


def test_set_adapter_switches_loss():
    peft_model = get_peft_model(base_model(), LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    peft_model.add_adapter("cinc2017", LRCConfig.for_task("cinc2017"))
    peft_model.eval()
    x = inputs()
    multi = torch.randint(0, 2, (4, 5)).float()
    with torch.no_grad():
        out = peft_model(input_values=x, labels=multi)
    assert torch.allclose(out.loss, F.binary_cross_entropy_with_logits(out.logits, multi), atol=1e-6)

    peft_model.set_adapter("cinc2017")
    targets = torch.tensor([0, 3, 2, 1])
    with torch.no_grad():
        out = peft_model(input_values=x, labels=targets)
    assert out.logits.shape == (4, 4)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, targets), atol=1e-6)
    # set_adapter makes the new task trainable and only it
    peft_model.train()
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("cinc2017" in n for n in trainable)


def test_disable_adapter_gives_base_features():
    base = base_model()
    x = inputs()
    with torch.no_grad():
        ref = base.encoder(x).pooler_output
        ref_logits = base(x).logits
    peft_model = get_peft_model(base, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    randomise_adapters(peft_model)
    peft_model.eval()
    encoder = peft_model.base_model.model.encoder
    with torch.no_grad():
        adapted = encoder(x).pooler_output
        assert not torch.allclose(adapted, ref, atol=1e-4)
        with peft_model.disable_adapter():
            assert torch.equal(encoder(x).pooler_output, ref)
            assert torch.equal(peft_model(input_values=x).logits, ref_logits)  # the base head too
        assert torch.equal(encoder(x).pooler_output, adapted)


def test_serial_merge_raises():
    peft_model = get_peft_model(base_model(), LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    with pytest.raises(ValueError, match="serial.*variant='parallel'|ReLU"):
        peft_model.merge_and_unload()
    with pytest.raises(ValueError, match="ReLU"):
        peft_model.merge_adapter()
    assert lrc_modules(peft_model, LRCHead)  # nothing was unloaded


# ----------------------------------------------------------------------------------------------------------------
# parallel variant
# ----------------------------------------------------------------------------------------------------------------


def test_parallel_merge_and_unload():
    base = base_model()
    x = inputs()
    with torch.no_grad():
        ref_features = base.encoder(x).pooler_output
    config = LRCConfig.for_task("cinc2017", variant="parallel", r=4, alpha=8)
    peft_model = get_peft_model(base, config, adapter_name="cinc2017")
    parallel = lrc_modules(peft_model, LRCParallel)
    assert parallel and all(m.get_base_layer().kernel_size[0] > 1 for m in parallel.values())
    assert not lrc_modules(peft_model, LRCSerial)
    encoder = peft_model.base_model.model.encoder
    with torch.no_grad():  # zero-init B: starts from the base function
        assert torch.allclose(encoder(x).pooler_output, ref_features, atol=1e-6)
    randomise_adapters(peft_model, std=0.05)
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(input_values=x).logits
        assert not torch.allclose(encoder(x).pooler_output, ref_features, atol=1e-4)
    merged = peft_model.merge_and_unload().eval()
    assert type(merged).__name__ == "XResNet1dForSequenceClassification"
    assert not lrc_modules(merged)
    assert isinstance(merged.head.classifier, nn.Linear) and merged.head.classifier.out_features == 4
    assert merged.config.num_labels == 4 and merged.config.problem_type == "single_label_classification"
    assert merged.config.id2label == get_task("cinc2017").id2label
    with torch.no_grad():
        merged_logits = merged(x).logits
    assert torch.allclose(merged_logits, adapted, atol=1e-4), (merged_logits - adapted).abs().max()


def test_parallel_merge_adapter_unmerge_and_head():
    """merge_adapter folds the parallel branches into the convs and keeps the task heads; unmerge restores the
    weights; a second unmerge warns as LoRA does; a head cannot be merged."""
    base = base_model()
    peft_model = get_peft_model(base, LRCConfig.for_task("cinc2017", variant="parallel", r=4), adapter_name="cinc2017")
    randomise_adapters(peft_model, std=0.05)
    peft_model.eval()
    x = inputs()
    convs = {n: m.get_base_layer().weight.clone() for n, m in lrc_modules(peft_model, LRCParallel).items()}
    with torch.no_grad():
        adapted = peft_model(input_values=x).logits
        peft_model.merge_adapter()
        assert all(m.merged for m in lrc_modules(peft_model, LRCParallel).values())
        assert torch.allclose(peft_model(input_values=x).logits, adapted, atol=1e-4)
        peft_model.unmerge_adapter()
    for name, module in lrc_modules(peft_model, LRCParallel).items():
        assert torch.allclose(module.get_base_layer().weight, convs[name], atol=1e-6)
    layer = next(iter(lrc_modules(peft_model, LRCParallel).values()))
    with pytest.warns(UserWarning, match="Already unmerged. Nothing to do."):
        layer.unmerge()
    head = next(iter(lrc_modules(peft_model, LRCHead).values()))
    with pytest.raises(ValueError, match="nothing to merge.*merge_and_unload"):
        head.merge()


def test_parallel_kernel_size_selection():
    config = LRCConfig.for_task("ptbxl-super", variant="parallel", kernel_sizes=[3])
    peft_model = get_peft_model(base_model(), config, adapter_name="t")
    kernels = {m.get_base_layer().kernel_size[0] for m in lrc_modules(peft_model, LRCParallel).values()}
    assert kernels == {3}
    with pytest.raises(ValueError, match="match no module"):  # no conv has kernel 11: only the head would train
        get_peft_model(base_model(), LRCConfig.for_task("ptbxl-super", variant="parallel", kernel_sizes=[11]), "t")


class DilatedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 6, 3, dilation=2, padding=2)
        self.conv2 = nn.Conv1d(6, 6, 5, dilation=3, padding=6, stride=2)
        self.head = nn.Module()
        self.head.classifier = nn.Linear(6, 2)

    def forward(self, input_values=None, **kwargs):
        return self.head.classifier(self.conv2(torch.relu(self.conv(input_values))).mean(-1))


def test_parallel_on_dilated_conv_merges_exactly():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 40)
    config = LRCConfig(
        variant="parallel", r=2, target_modules=["conv", "conv2"], labels=["a", "b"],
        problem_type="single_label_classification",
    )
    peft_model = get_peft_model(DilatedNet(), config, adapter_name="t")
    layer = peft_model.base_model.model.conv2
    assert isinstance(layer, LRCParallel)
    assert layer.lrc_down["t"].dilation == (3,) and layer.lrc_down["t"].stride == (2,)
    randomise_adapters(peft_model, std=0.3)
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(input_values=x)
        # the branch equals a conv with the low-rank delta kernel
        conv = layer.get_base_layer()
        inner = torch.relu(peft_model.base_model.model.conv(x))
        direct = F.conv1d(inner, conv.weight + layer.get_delta_weight("t"), conv.bias, 2, 6, 3)
        assert torch.allclose(layer(inner), direct, atol=1e-5)
    merged = peft_model.merge_and_unload()
    assert isinstance(merged.conv2, nn.Conv1d)
    with torch.no_grad():
        assert torch.allclose(merged(input_values=x), adapted, atol=1e-5)


def test_peft_lora_differs_on_dilated_conv():
    """PEFT's own LoRA ignores dilation (the reason for the parallel LRC variant); skip once it is fixed upstream."""
    lora = get_peft_model(DilatedNet(), LoraConfig(r=2, target_modules=["conv"]))
    try:
        lora(input_values=torch.randn(2, 3, 40))
    except RuntimeError:
        return
    pytest.skip("peft LoRA handles dilated Conv1d in this version")


# ----------------------------------------------------------------------------------------------------------------
# encoder checks
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, what",
    [
        (dict(block_widths=[16, 16]), "block_widths"),
        (dict(layers=[1, 2]), "layers"),
        (dict(in_channels=1), "in_channels"),
    ],
)
def test_adapter_mismatch_raises(tmp_path, overrides, what):
    peft_model = get_peft_model(base_model(), LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    peft_model.save_pretrained(tmp_path)
    other = base_model(seed=1, **overrides)
    with pytest.raises(AdapterMismatchError) as err:
        PeftModel.from_pretrained(other, tmp_path / "ptbxl-super", adapter_name="ptbxl-super")
    message = str(err.value)
    assert what in message and "adapter" in message and "encoder" in message
    expected, actual = XRES_TINY | {"in_channels": 12}, {**XRES_TINY, "in_channels": 12, **overrides}
    assert f"adapter {expected[what]!r} vs encoder {actual[what]!r}" in message  # names both
    assert "ptbxl-super" in message
    assert isinstance(err.value, ValueError)


def test_lstm_has_no_parallel_insertion_point():
    match = r"no default insertion point in a 'lstm1d' model \(it has no convolutions"
    with pytest.raises(ValueError, match=match) as err:
        get_peft_model(base_model("lstm1d"), LRCConfig.for_task("ptbxl-super", variant="parallel"), adapter_name="t")
    assert "examples/finetune.py" in str(err.value) and "finetune_baselines" not in str(err.value)


def test_target_modules_matching_nothing_is_refused():
    base = base_model()
    with pytest.raises(ValueError, match=r"match no module of this 'xresnet1d' model") as err:
        get_peft_model(base, LRCConfig.for_task("ptbxl-super", target_modules=["nonexistent"]), adapter_name="t")
    assert "\n" not in str(err.value)
    assert not lrc_modules(base)


def test_other_weights_of_the_same_architecture_are_refused(tmp_path):
    """The adapter records a fingerprint of the encoder weights: a same-shaped encoder with other weights is refused
    (the signature alone would accept it)."""
    peft_model = get_peft_model(base_model(), LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    assert peft_model.peft_config["ptbxl-super"].encoder_fingerprint.startswith("sha256:")
    peft_model.save_pretrained(tmp_path)
    other = base_model(seed=1)
    match = r"trained on encoder weights sha256:\w{16}\.\.\. but the base model's weights are sha256:\w{16}\.\.\."
    with pytest.raises(AdapterMismatchError, match=match) as err:
        PeftModel.from_pretrained(other, tmp_path / "ptbxl-super", adapter_name="ptbxl-super")
    assert "\n" not in str(err.value)
    assert not lrc_modules(other)


def test_bad_head_module_raises():
    with pytest.raises(ValueError, match="head_module"):
        get_peft_model(base_model(), LRCConfig.for_task("ptbxl-super", head_module="head.nope"), adapter_name="t")


@pytest.mark.parametrize(
    "family, variant", [(f, "serial") for f in FAMILIES] + [(f, "parallel") for f in CONV_FAMILIES]
)
def test_families_inject_and_train(family, variant):
    base = base_model(family, num_labels=9)
    x = inputs()
    with torch.no_grad():
        ref = base.encoder(x).pooler_output
    config = LRCConfig.for_task("cpsc2018", variant=variant, r=4)  # the tiny inception convs have 4 channels
    peft_model = get_peft_model(base, config, adapter_name="cpsc2018")
    layer_cls = LRCSerial if variant == "serial" else LRCParallel
    assert len(lrc_modules(peft_model, layer_cls)) >= 1
    encoder = peft_model.base_model.model.encoder
    with torch.no_grad():
        assert torch.allclose(encoder(x).pooler_output, ref, atol=1e-5)  # zero init
    peft_model.train()
    out = peft_model(input_values=x, labels=torch.randint(0, 2, (4, 9)).float())
    assert out.logits.shape == (4, 9)
    out.loss.backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
    assert grads and all("lrc_" in n for n in grads)
    assert all(g is not None for g in grads.values())
    # up/B is zero-initialised, so its gradient is what starts the adaptation
    assert any(g.abs().sum() > 0 for n, g in grads.items() if "lrc_up" in n)


@pytest.mark.parametrize("family", FAMILIES)
def test_two_task_adapters_on_every_family(family, tmp_path):
    """On each family: two task adapters with different label counts train one step each (frozen base weights and
    BatchNorm statistics unchanged), switch with set_adapter, and reload exactly on a fresh copy of the encoder."""
    base = base_model(family)
    base.save_pretrained(tmp_path / "base")
    frozen = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = get_peft_model(base, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    peft_model.add_adapter("cinc2017", LRCConfig.for_task("cinc2017"))
    x = inputs()
    batches = {"ptbxl-super": torch.randint(0, 2, (4, 5)).float(), "cinc2017": torch.tensor([0, 3, 1, 2])}
    for task, labels in batches.items():
        peft_model.set_adapter(task)
        peft_model.train()
        optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
        peft_model(input_values=x, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    base_after = peft_model.get_base_model()
    for key, value in frozen.items():  # the base weights and BatchNorm statistics did not move
        module, _, leaf = key.rpartition(".")
        wrapped = f"{module}.base_layer.{leaf}"
        tensor = base_after.state_dict().get(key, base_after.state_dict().get(wrapped))
        assert tensor is not None and torch.equal(tensor, value), key
    peft_model.eval()
    reference = {}
    for task, labels in batches.items():
        peft_model.set_adapter(task)
        with torch.no_grad():
            reference[task] = peft_model(input_values=x).logits
        assert reference[task].shape == (4, get_task(task).num_labels)
        assert peft_model.config.problem_type == get_task(task).problem_type
    assert not torch.allclose(reference["cinc2017"][:, :4], reference["ptbxl-super"][:, :4])
    peft_model.save_pretrained(tmp_path / "adapters")
    fresh = ENCODER_FAMILIES[family][2].from_pretrained(tmp_path / "base").eval()
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapters" / "ptbxl-super", adapter_name="ptbxl-super")
    loaded.load_adapter(tmp_path / "adapters" / "cinc2017", adapter_name="cinc2017")
    loaded.eval()
    for task in ["cinc2017", "ptbxl-super", "cinc2017"]:
        loaded.set_adapter(task)
        with torch.no_grad():
            assert torch.equal(loaded(input_values=x).logits, reference[task]), task


# ----------------------------------------------------------------------------------------------------------------
# PEFT LoRA baseline
# ----------------------------------------------------------------------------------------------------------------


def test_peft_lora_baseline_on_resnet1d(tmp_path):
    base = base_model("resnet1d", num_labels=4, problem_type="single_label_classification")
    base.save_pretrained(tmp_path / "base")
    x = inputs()
    with torch.no_grad():
        ref = base(x).logits
    # a regex (full match) naming every Conv1d of the encoder; the head is trained in full
    config = LoraConfig(r=4, lora_alpha=8, target_modules=r"encoder\..*\.conv", modules_to_save=["head"])
    peft_model = get_peft_model(base, config)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any("modules_to_save" in n for n in trainable)
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)
    peft_model.eval()
    with torch.no_grad():
        assert torch.allclose(peft_model(input_values=x).logits, ref, atol=1e-6)  # B = 0 at init
    peft_model.train()
    for module in peft_model.modules():  # LoRA does not keep the frozen BatchNorm statistics from drifting
        if isinstance(module, nn.BatchNorm1d):
            module.eval()
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.1)
    targets = torch.tensor([0, 1, 2, 3])
    for _ in range(2):
        out = peft_model(input_values=x, labels=targets)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        trained = peft_model(input_values=x).logits
    peft_model.save_pretrained(tmp_path / "lora")
    fresh = ENCODER_FAMILIES["resnet1d"][2].from_pretrained(tmp_path / "base")
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "lora").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(input_values=x).logits, trained, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# frozen BatchNorm on the gradient path: the encoders' BatchNorm1d computes the affine map directly


@pytest.mark.parametrize("family", ["xresnet1d", "inception1d"])
def test_frozen_batchnorm_fast_path_gives_the_same_training_step(family, monkeypatch):
    """An adapter training step through the encoders' BatchNorm1d (frozen, eval mode: a multiply-add) gives the same
    loss and adapter gradients as through ``nn.BatchNorm1d``'s own forward, and leaves the statistics alone."""
    from tac_ecg_hf.models.encoders.modeling_ecg_base import BatchNorm1d

    model = get_peft_model(base_model(family), LRCConfig(r=2, target_modules=None), adapter_name="t")
    randomise_adapters(model)
    assert any(type(m) is BatchNorm1d for m in model.modules())
    model.eval()  # deterministic (dropout off); the frozen BatchNorms are in eval mode in training too
    x, labels = inputs(), torch.tensor([[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0]]).float()
    before = bn_state(model)

    step = functools.partial(_training_step, model, x, labels)

    calls = []
    batch_norm = F.batch_norm
    with monkeypatch.context() as patch:  # the fast path is taken by the BatchNorms behind the first adapter
        patch.setattr(F, "batch_norm", lambda *a, **k: calls.append(1) or batch_norm(*a, **k))
        fast_loss, fast_grads = step()
    frozen_bns = sum(isinstance(m, BatchNorm1d) for m in model.modules())
    assert len(calls) < frozen_bns, (len(calls), frozen_bns)  # those before the first adapter keep F.batch_norm
    monkeypatch.setattr(BatchNorm1d, "forward", nn.BatchNorm1d.forward)
    ref_loss, ref_grads = step()
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert fast_grads.keys() == ref_grads.keys() and any("lrc_down" in n for n in fast_grads)
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    after = bn_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_batchnorm_fast_path_only_where_frozen_in_eval_mode():
    from tac_ecg_hf.models.encoders.modeling_ecg_base import BatchNorm1d

    bn = BatchNorm1d(3)
    assert list(bn.state_dict()) == list(nn.BatchNorm1d(3).state_dict())
    x = torch.randn(5, 3, 7, requires_grad=True)
    bn.train()
    bn(x)  # training mode: batch statistics, running statistics updated
    assert int(bn.num_batches_tracked) == 1 and not torch.equal(bn.running_mean, torch.zeros(3))
    bn.eval()
    y = bn(x)  # eval mode, trainable affine parameters: nn.BatchNorm1d's path, gradients reach them
    y.sum().backward()
    assert bn.weight.grad is not None and x.grad is not None
    bn.requires_grad_(False)
    torch.testing.assert_close(bn(x), F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                                   False, 0.0, bn.eps))


def _training_step(model, x, labels, bf16: bool = False):
    """One forward + backward: (float32 loss, gradient of each trainable parameter by name)."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_values=x, labels=labels).loss
    loss.backward()
    return loss.detach().float(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("pointwise_matmul_min_length", [0, None], ids=["pointwise-as-matmul", "default"])
@pytest.mark.parametrize("family", ["xresnet1d", "resnet1d"])
def test_frozen_conv_batchnorm_folding_gives_the_same_training_step(family, pointwise_matmul_min_length, monkeypatch):
    """Behind a training adapter, a frozen conv + frozen BatchNorm pair runs as one conv with folded weights, also
    where a serial adapter wraps the BatchNorm (it adapts the folded conv's output), and a pointwise one as a matmul:
    the same loss and adapter gradients as conv then BatchNorm, and the frozen weights and statistics untouched."""
    from tac_ecg_hf.models.encoders import layers
    from tac_ecg_hf.models.encoders.layers import BatchNorm1d, ConvBnAct1d

    if pointwise_matmul_min_length is not None:  # the tiny encoders' maps are shorter than the default
        monkeypatch.setattr(layers, "POINTWISE_MATMUL_MIN_LENGTH", pointwise_matmul_min_length)
    model = get_peft_model(base_model(family), LRCConfig(r=2, target_modules=None), adapter_name="t")
    randomise_adapters(model)
    model.eval()
    x, labels = inputs(), torch.tensor([[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0]]).float()
    before = {k: v.clone() for k, v in model.state_dict().items() if "lrc_" not in k}

    step = functools.partial(_training_step, model, x, labels)

    calls = {"folded": 0, "matmul": 0, "serial forward": 0, "serial after a fold": 0}
    pointwise = layers._FrozenPointwiseConv.apply
    serial_forward, adapt = LRCSerial.forward, LRCSerial.adapt_base_output

    def count(key, fn):
        def counted(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)
        return counted

    with monkeypatch.context() as patch:
        patch.setattr(layers, "frozen_conv1d", count("folded", layers.frozen_conv1d))
        patch.setattr(layers._FrozenPointwiseConv, "apply", count("matmul", pointwise))
        patch.setattr(LRCSerial, "forward", count("serial forward", serial_forward))
        patch.setattr(LRCSerial, "adapt_base_output", count("serial after a fold", adapt))
        fast_loss, fast_grads = step()
    assert calls["folded"] > 0, calls
    # every adapter but the first (whose conv input needs no gradient) sees a folded pair's output
    assert calls["serial after a fold"] - calls["serial forward"] > 0, calls
    assert (calls["matmul"] > 0) == (pointwise_matmul_min_length == 0 and family == "xresnet1d"), calls
    monkeypatch.setattr(ConvBnAct1d, "forward", lambda self, t: self.act(self.bn(self.conv(t))))
    monkeypatch.setattr(BatchNorm1d, "forward", nn.BatchNorm1d.forward)
    ref_loss, ref_grads = step()
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert fast_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    after = {k: v for k, v in model.state_dict().items() if "lrc_" not in k}
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("pointwise_matmul_min_length", [0, None], ids=["pointwise-as-matmul", "default"])
def test_conv_batchnorm_folding_under_bf16_autocast_is_close(pointwise_matmul_min_length, monkeypatch):
    """Under bf16 autocast the folded pairs round the folded weights instead of the conv output: a training step's loss
    and adapter gradients stay within bfloat16 rounding of the unfolded step's."""
    from tac_ecg_hf.models.encoders import layers
    from tac_ecg_hf.models.encoders.layers import ConvBnAct1d

    if pointwise_matmul_min_length is not None:
        monkeypatch.setattr(layers, "POINTWISE_MATMUL_MIN_LENGTH", pointwise_matmul_min_length)

    model = get_peft_model(base_model("xresnet1d"), LRCConfig(r=2, target_modules=None), adapter_name="t")
    randomise_adapters(model)
    model.eval()
    x, labels = inputs(), torch.tensor([[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0]]).float()

    step = functools.partial(_training_step, model, x, labels, bf16=True)

    folded_loss, folded = step()
    plain_forward = ConvBnAct1d.forward
    try:
        ConvBnAct1d.forward = lambda self, t: self.act(self.bn(self.conv(t)))
        plain_loss, plain = step()
    finally:
        ConvBnAct1d.forward = plain_forward
    torch.testing.assert_close(folded_loss, plain_loss, rtol=2e-2, atol=1e-3)
    flat = lambda g: torch.cat([v.flatten() for _, v in sorted(g.items())])  # noqa: E731
    a, b = flat(folded), flat(plain)
    assert (a - b).norm() <= 0.05 * b.norm(), ((a - b).norm(), b.norm())


@pytest.mark.parametrize("pointwise_matmul_min_length", [0, 10**9], ids=["pointwise-as-matmul", "pointwise-as-conv"])
@pytest.mark.parametrize("family", ["xresnet1d", "resnet1d"])
def test_conv_batchnorm_folding_in_inference_gives_the_same_logits(family, pointwise_matmul_min_length, monkeypatch):
    """In inference (eval mode, no gradient) every frozen conv + BatchNorm pair takes ``frozen_conv1d``, also under a
    serial adapter, and a pointwise one runs as a batched matmul: folded in float32, the conv then the BatchNorm
    under bf16 autocast (parity with float32), with the logits of conv then BatchNorm; in training mode (batch
    statistics) nothing is folded."""
    from tac_ecg_hf.models.encoders import layers
    from tac_ecg_hf.models.encoders.layers import ConvBnAct1d

    monkeypatch.setattr(layers, "POINTWISE_INFERENCE_MATMUL_MIN_LENGTH", pointwise_matmul_min_length)
    model = get_peft_model(base_model(family), LRCConfig(r=2, target_modules=None), adapter_name="t")
    randomise_adapters(model)
    model.eval()
    x = inputs()
    pairs = sum(type(m) is ConvBnAct1d for m in model.modules())
    assert pairs > 0
    calls = {"frozen conv": 0, "folded": 0, "matmul": 0}
    inside = []
    frozen_conv, bmm, baddbmm = layers.frozen_conv1d, torch.bmm, torch.baddbmm

    def counted_frozen_conv(x, weight, bias, conv):
        calls["frozen conv"] += 1
        calls["folded"] += weight is not conv.weight  # the folded weights W * scale, not the conv's own
        inside.append(1)
        try:
            return frozen_conv(x, weight, bias, conv)
        finally:
            inside.pop()

    def counted(fn):
        def matmul(*args, **kwargs):  # the pairs' matmuls, not the adapters' own (lrc_core)
            calls["matmul"] += bool(inside)
            return fn(*args, **kwargs)
        return matmul

    results = {}
    for bf16 in (False, True):
        with monkeypatch.context() as patch, torch.no_grad():
            patch.setattr(layers, "frozen_conv1d", counted_frozen_conv)
            patch.setattr(layers.torch, "bmm", counted(bmm))
            patch.setattr(layers.torch, "baddbmm", counted(baddbmm))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                results[bf16, "fast"] = model(input_values=x).logits.float()
            assert calls["frozen conv"] == pairs, (calls, pairs)  # every pair, the adapted ones too
            assert calls["folded"] == (0 if bf16 else pairs), calls
            if family == "xresnet1d":  # it has pointwise convs (bottlenecks, shortcuts); resnet1d's are strided
                assert (calls["matmul"] > 0) == (pointwise_matmul_min_length == 0), calls
            calls.update({k: 0 for k in calls})
            patch.setattr(ConvBnAct1d, "forward", lambda self, t: self.act(self.bn(self.conv(t))))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                results[bf16, "plain"] = model(input_values=x).logits.float()
    torch.testing.assert_close(results[False, "fast"], results[False, "plain"], rtol=1e-5, atol=1e-5)
    scale = results[False, "plain"].abs().max()
    assert (results[True, "fast"] - results[True, "plain"]).abs().max() <= 0.01 * scale
    model.train()
    with monkeypatch.context() as patch, torch.no_grad():
        patch.setattr(layers, "frozen_conv1d", counted_frozen_conv)
        model(input_values=x)
    assert calls["frozen conv"] == 0, calls


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_low_rank_conv_as_matmul_equals_the_conv(bias, bf16):
    """The adapters' pointwise convs run as one batched matmul: the output, its dtype under autocast and the
    gradients of the input, weight and bias are the conv's (up to the order of the sums); other modules are called."""
    from tac_ecg_hf.adapters.lrc_core import low_rank_conv

    torch.manual_seed(0)
    conv = nn.Conv1d(16, 4, 1, bias=bias)
    x = torch.randn(3, 16, 70, requires_grad=True)
    grad = torch.randn(3, 4, 70)
    results = []
    for fn in (low_rank_conv, lambda m, t: m(t)):
        conv.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fn(conv, x)
        out.backward(grad.to(out.dtype))
        results.append((out.detach(), x.grad.clone(), conv.weight.grad.clone(),
                        None if conv.bias is None else conv.bias.grad.clone()))
    (fast, *fast_grads), (ref, *ref_grads) = results
    assert fast.dtype == ref.dtype == (torch.bfloat16 if bf16 else torch.float32)
    tol = dict(rtol=2e-2, atol=2e-2) if bf16 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast, ref, **tol)
    for a, b in zip(fast_grads, ref_grads):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, **tol)
    wide = nn.Conv1d(16, 4, 3, padding=1)  # not pointwise: called as it is
    torch.testing.assert_close(low_rank_conv(wide, x), wide(x))
