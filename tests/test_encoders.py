"""Unit tests of the six ECG encoder families (tiny configs, CPU, a few seconds in all)."""

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
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention, SequenceClassifierOutput

import tac_ecg_hf
from tac_ecg_hf import ENCODER_FAMILIES, ENCODER_PRESETS, create_encoder_config
from tac_ecg_hf.models.encoders import ConfigFieldError

TINY = TINY_ENCODERS  # tiny, fast configs of every family (support/tiny.py)
FAMILIES = sorted(TINY)


def tiny_config(family: str, **overrides):
    return create_encoder_config(family, **{**TINY[family], **overrides})


def build(family: str, kind: str = "base", seed: int = 0, **overrides):
    config_cls, model_cls, cls_cls = ENCODER_FAMILIES[family]
    torch.manual_seed(seed)
    model = (model_cls if kind == "base" else cls_cls)(tiny_config(family, **overrides))
    return model.eval()


def _randomise_batchnorm_stats(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial running stats so that a reload has something to get wrong."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
                module.num_batches_tracked.fill_(7)


# ----------------------------------------------------------------------------------------------------------------
# registry / presets
# ----------------------------------------------------------------------------------------------------------------


def test_families_and_presets_are_registered():
    assert set(ENCODER_FAMILIES) == set(TINY)
    for name, (model_type, _) in ENCODER_PRESETS.items():
        assert create_encoder_config(name).model_type == model_type
    with pytest.raises(KeyError, match="Unknown encoder"):
        create_encoder_config("resnet9000")


def test_preset_overrides_are_applied():
    config = create_encoder_config("xresnet1d50", num_labels=7, in_channels=1)
    assert config.layers == [3, 4, 6, 3]
    assert config.num_labels == 7 and config.in_channels == 1 and config.lead_names == ["I"]


def test_xresnet1d101_has_about_1_5m_parameters():
    model = ENCODER_FAMILIES["xresnet1d"][1](create_encoder_config("xresnet1d101"))
    n_params = sum(p.numel() for p in model.parameters())
    assert 1.4e6 <= n_params <= 1.6e6, n_params
    assert model.config.feature_size == 512  # 2 (avg+max) * 64 * 4


# ----------------------------------------------------------------------------------------------------------------
# forward shapes and losses
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_base_model_forward_shapes(family):
    model = build(family)
    x = torch.randn(3, 12, 200)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, BaseModelOutputWithPoolingAndNoAttention)
    hidden, pooled = out.last_hidden_state, out.pooler_output
    assert hidden.dim() == 3 and hidden.shape[0] == 3
    assert pooled.shape == (3, model.config.feature_size)
    assert out.hidden_states is None  # only on request
    # pooler_output is the pooling of last_hidden_state (avg + max by default)
    assert torch.allclose(pooled, torch.cat([hidden.mean(-1), hidden.amax(-1)], dim=-1))
    assert torch.isfinite(pooled).all()
    # the tuple form gives the same tensors
    with torch.no_grad():
        hidden_t, pooled_t = model(x, return_dict=False)
    assert torch.equal(hidden_t, hidden) and torch.equal(pooled_t, pooled)


#: feature maps returned as hidden_states: the stem output and one per stage / block / layer
EXPECTED_HIDDEN_STATES = {
    "xresnet1d": 1 + len(TINY["xresnet1d"]["layers"]),
    "resnet1d": 1 + len(TINY["resnet1d"]["layers"]),
    "inception1d": TINY["inception1d"]["depth"],
    "fcn1d": len(TINY["fcn1d"]["widths"]),
    "lstm1d": TINY["lstm1d"]["num_layers"],
    "ecg_transformer": 1 + TINY["ecg_transformer"]["num_hidden_layers"],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_output_hidden_states(family):
    model = build(family, kind="cls", num_labels=3)
    x = torch.randn(2, 12, 160)
    with torch.no_grad():
        base = model.encoder(x, output_hidden_states=True)
        cls = model(x, output_hidden_states=True)
        plain = model.encoder(x)
    states = base.hidden_states
    assert isinstance(states, tuple) and len(states) == EXPECTED_HIDDEN_STATES[family]
    assert all(h.dim() == 3 and h.shape[0] == 2 for h in states)  # (batch, channels, time) like last_hidden_state
    assert states[-1].shape[1] == base.last_hidden_state.shape[1]
    if family != "ecg_transformer":  # the transformer's last_hidden_state is its last layer after the final norm
        assert torch.equal(states[-1], base.last_hidden_state)
    assert torch.equal(base.pooler_output, plain.pooler_output)  # asking for them changes nothing else
    assert isinstance(cls, SequenceClassifierOutput) and len(cls.hidden_states) == len(states)
    for a, b in zip(cls.hidden_states, states):
        assert torch.equal(a, b)
    # tuple outputs carry them last, as transformers' ResNet does
    with torch.no_grad():
        as_tuple = model.encoder(x, output_hidden_states=True, return_dict=False)
        logits, states_t = model(x, output_hidden_states=True, return_dict=False)
    assert len(as_tuple) == 3 and len(as_tuple[2]) == len(states)
    assert torch.equal(logits, cls.logits) and len(states_t) == len(states)
    # the config default is honoured
    model.config.output_hidden_states = True
    with torch.no_grad():
        assert len(model.encoder(x).hidden_states) == len(states)


def test_lstm_layers_compute_what_a_stacked_nn_lstm_computes():
    """LSTM1d keeps one nn.LSTM per layer (so adapters fit between layers); the result equals one multi-layer LSTM."""
    model = build("lstm1d", num_layers=3, hidden_size=6, bidirectional=True)
    reference = nn.LSTM(12, 6, num_layers=3, batch_first=True, bidirectional=True).eval()
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            for name, value in layer.named_parameters():  # weight_ih_l0 -> weight_ih_l{i}
                getattr(reference, name.replace("_l0", f"_l{i}")).copy_(value)
        x = torch.randn(2, 12, 50)
        expected, _ = reference(x.transpose(1, 2))
        assert torch.allclose(model(x).last_hidden_state, expected.transpose(1, 2), atol=1e-6)


@pytest.mark.parametrize("family", ["xresnet1d", "lstm1d"])
def test_avg_pooling_feature_size(family):
    model = build(family, pooling="avg")
    with torch.no_grad():
        out = model(torch.randn(2, 12, 120))
    assert out.pooler_output.shape == (2, model.config.feature_size)
    assert torch.allclose(out.pooler_output, out.last_hidden_state.mean(-1))


@pytest.mark.parametrize("family", FAMILIES)
def test_classification_losses_match_torch(family):
    x = torch.randn(4, 12, 160)

    multi = build(family, kind="cls", num_labels=5, problem_type="multi_label_classification")
    labels = torch.randint(0, 2, (4, 5)).float()
    with torch.no_grad():
        out = multi(x, labels=labels)
    assert out.logits.shape == (4, 5)
    assert torch.allclose(out.loss, F.binary_cross_entropy_with_logits(out.logits, labels), atol=1e-6)

    single = build(family, kind="cls", num_labels=4, problem_type="single_label_classification")
    targets = torch.tensor([0, 3, 1, 2])
    with torch.no_grad():
        out = single(x, labels=targets)
    assert out.logits.shape == (4, 4)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, targets), atol=1e-6)


def _auto_classifier(num_labels: int = 5, **overrides):
    torch.manual_seed(0)
    config = create_encoder_config("resnet1d", **TINY["resnet1d"], num_labels=num_labels, **overrides)
    return AutoModelForSequenceClassification.from_config(config).eval()


def test_problem_type_is_inferred_from_the_labels():
    """problem_type left unset: float multi-hot rows give BCE, integer class ids give cross-entropy (as
    transformers' classification heads do), and the inferred type is stored in the config."""
    x = torch.randn(4, 12, 128)
    multi = _auto_classifier(num_labels=5)
    assert multi.config.problem_type is None
    multi_hot = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        out = multi(x, labels=multi_hot)
    assert torch.allclose(out.loss, F.binary_cross_entropy_with_logits(out.logits, multi_hot), atol=1e-6)
    assert multi.config.problem_type == "multi_label_classification"

    single = _auto_classifier(num_labels=5)
    targets = torch.tensor([4, 0, 2, 2])
    with torch.no_grad():
        out = single(x, labels=targets)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, targets), atol=1e-6)
    assert single.config.problem_type == "single_label_classification"

    regression = _auto_classifier(num_labels=1)
    values = torch.tensor([0.5, -1.0, 2.0, 0.0])
    with torch.no_grad():
        out = regression(x, labels=values)
    assert torch.allclose(out.loss, F.mse_loss(out.logits.squeeze(-1), values), atol=1e-6)
    assert regression.config.problem_type == "regression"


def test_explicit_problem_type_is_respected():
    x = torch.randn(4, 12, 128)
    # integer-valued multi-hot rows under an explicit multi-label problem type: BCE, not a class-id reading
    multi = _auto_classifier(num_labels=3, problem_type="multi_label_classification")
    rows = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    with torch.no_grad():
        out = multi(x, labels=rows)
    assert torch.allclose(out.loss, F.binary_cross_entropy_with_logits(out.logits, rows), atol=1e-6)
    assert multi.config.problem_type == "multi_label_classification"
    single = _auto_classifier(num_labels=3, problem_type="single_label_classification")
    with pytest.raises(ValueError, match="look like multi-hot rows: use problem_type='multi_label_classification'"):
        single(x, labels=rows)
    assert single.config.problem_type == "single_label_classification"


def test_classification_label_errors():
    x = torch.randn(2, 12, 100)
    multi = build("fcn1d", kind="cls", num_labels=5, problem_type="multi_label_classification")
    with pytest.raises(ValueError, match="multi-label labels must have shape"):
        multi(x, labels=torch.ones(2, 4))
    single = build("fcn1d", kind="cls", num_labels=4, problem_type="single_label_classification")
    with pytest.raises(ValueError, match=r"single-label labels must be 2 class ids"):
        single(x, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(IndexError, match="out of bounds"):  # torch's own message for a class id >= num_labels
        single(x, labels=torch.tensor([0, 4]))
    inferred = build("fcn1d", kind="cls", num_labels=4)
    with pytest.raises(ValueError, match=r"integer class ids need dtype torch.long"):
        inferred(x, labels=torch.tensor([0.0, 2.0]))


def test_classification_backward_reaches_encoder():
    model = build("xresnet1d", kind="cls", num_labels=3).train()
    out = model(torch.randn(4, 12, 100), labels=torch.tensor([0, 1, 2, 1]))
    out.loss.backward()
    assert model.encoder.stem[0].conv.weight.grad.abs().sum() > 0
    assert model.head.classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("length", [250, 1000, 6000])
def test_different_record_lengths(family, length):
    if family in ("lstm1d", "ecg_transformer") and length == 6000:
        batch = 1  # the sequential LSTM / attention cost most here; keep it cheap
    else:
        batch = 2
    model = build(family)
    with torch.no_grad():
        out = model(torch.randn(batch, 12, length))
    assert out.pooler_output.shape == (batch, model.config.feature_size)
    assert torch.isfinite(out.pooler_output).all()


def test_single_lead_encoder():
    model = build("resnet1d", in_channels=1)
    assert model.config.lead_names == ["I"]
    with torch.no_grad():
        out = model(torch.randn(2, 1, 300))
    assert out.pooler_output.shape == (2, model.config.feature_size)


# ----------------------------------------------------------------------------------------------------------------
# input validation
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["base", "cls"])
def test_input_errors_are_helpful(kind):
    model = build("xresnet1d", kind=kind, num_labels=2)
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        model(torch.randn(12, 1000))
    with pytest.raises(ValueError, match=r"expected \(batch, 12 leads, samples\)"):
        model(torch.randn(1, 1, 12, 100))
    with pytest.raises(ValueError, match="8 leads") as err:
        model(torch.randn(2, 8, 1000))
    assert "V6" in str(err.value)  # names the leads the encoder reads
    assert "transpose" not in str(err.value)
    with pytest.raises(ValueError, match=r"time-first: pass input_values.transpose\(1, 2\)"):
        model(torch.randn(2, 1000, 12))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(torch.randn(2, 12, 100).numpy())


def test_forward_does_not_scan_values():
    """The model checks shapes only (no host-device sync per batch): NaN values pass through; the feature
    extractor (ECGPreprocessor) is where records are checked for them."""
    model = build("resnet1d")
    bad = torch.randn(2, 12, 100)
    bad[0, 3, 10] = float("nan")
    with torch.no_grad():
        pooled = model(bad).pooler_output
    assert torch.isnan(pooled[0]).any() and torch.isfinite(pooled[1]).all()


@pytest.mark.parametrize(
    "family, kwargs, match",
    [
        ("xresnet1d", dict(in_channels=3, lead_names=["I", "II"]), "lead_names has 2 names but in_channels=3"),
        ("lstm1d", dict(in_channels=12, lead_names=["I"]), "lead_names"),
        ("xresnet1d", dict(pooling="attention"), "pooling"),
        ("xresnet1d", dict(layers=[1, 1], block_widths=[8]), "same length"),
        ("xresnet1d", dict(kernel_size=4), "kernel_size must be an odd integer"),
        ("resnet1d", dict(kernel_size=4), "kernel_size must be an odd integer"),
        ("inception1d", dict(kernel_sizes=[8, 5]), r"kernel_sizes\[0\] must be an odd integer"),
        ("fcn1d", dict(widths=[8, 8], kernel_sizes=[3]), "same length"),
        ("ecg_transformer", dict(hidden_size=18, num_attention_heads=4), "divisible"),
        ("resnet1d", dict(in_channels=0), r"in_channels must be an integer in \[1, 64\], got 0"),
        ("resnet1d", dict(sampling_rate=-100), "sampling_rate must be an integer"),
        ("lstm1d", dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
    ],
)
def test_inconsistent_configs_raise(family, kwargs, match):
    with pytest.raises(ConfigFieldError, match=match) as err:
        create_encoder_config(family, **{**TINY[family], **kwargs})
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------------------------
# initialisation
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["base", "cls"])
def test_init_is_deterministic(family, kind):
    a = build(family, kind=kind, seed=123, num_labels=3).state_dict()
    b = build(family, kind=kind, seed=123, num_labels=3).state_dict()
    c = build(family, kind=kind, seed=7, num_labels=3).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_post_init_applied_own_init():
    model = build("xresnet1d", kind="cls", num_labels=3)
    encoder = model.encoder
    # Conv1d: kaiming normal (fan_out), not transformers' default normal(0.02)
    conv = encoder.stem[1].conv  # 8 -> 8, kernel 3: std sqrt(2 / 24) = 0.29
    assert 0.15 < conv.weight.std().item() < 0.45
    # the last BatchNorm of each residual branch starts at zero (identity blocks); the others at one
    for block in (encoder.stages[0][0], encoder.stages[1][0]):
        assert torch.all(block.convpath[-1].bn.weight == 0)
        assert torch.all(block.convpath[0].bn.weight == 1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            assert torch.all(module.bias == 0)
            assert torch.all(module.running_mean == 0) and torch.all(module.running_var == 1)
    # head: normal(initializer_range), zero bias
    head = model.head.classifier
    assert torch.all(head.bias == 0)
    assert 0.005 < head.weight.std().item() < 0.05


def test_post_init_lstm_and_transformer():
    lstm = build("lstm1d").layers[0]
    hidden = lstm.hidden_size
    assert torch.all(lstm.bias_ih_l0[hidden : 2 * hidden] == 1.0)  # forget gate
    assert torch.all(lstm.bias_ih_l0[:hidden] == 0.0)
    w = lstm.weight_hh_l0  # orthogonal init of the (4H, H) matrix: orthonormal columns
    assert torch.allclose(w.t() @ w, torch.eye(hidden), atol=1e-4)

    transformer = build("ecg_transformer", initializer_range=0.05)
    attention = transformer.layers[0].attention
    assert torch.all(attention.q_proj.bias == 0)
    assert 0.03 < attention.q_proj.weight.std().item() < 0.07  # transformers' default: normal(initializer_range)
    assert torch.all(transformer.norm.weight == 1) and torch.all(transformer.norm.bias == 0)


def test_from_pretrained_initialises_only_what_the_checkpoint_lacks(tmp_path):
    """_init_weights uses transformers.initialization, so loaded tensors are never re-initialised; the head a
    classifier adds on top of an encoder-only checkpoint is."""
    encoder = build("xresnet1d")
    _randomise_batchnorm_stats(encoder)
    encoder.save_pretrained(tmp_path)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    for key, value in encoder.state_dict().items():
        assert torch.equal(classifier.encoder.state_dict()[key], value), key
    head = classifier.head.classifier
    assert torch.all(head.bias == 0) and 0.005 < head.weight.std().item() < 0.05


# ----------------------------------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_config_round_trip(family, tmp_path):
    config = tiny_config(family, num_labels=3, sampling_rate=250, lead_names=list("ABCDEFGHIJKL"))
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is type(config)
    assert loaded.feature_size == config.feature_size
    assert loaded.encoder_signature() == config.encoder_signature()
    assert loaded.lead_names == list("ABCDEFGHIJKL") and loaded.sampling_rate == 250
    a, b = config.to_dict(), loaded.to_dict()
    for key in set(a) | set(b):
        if key not in ("transformers_version", "auto_map", "_name_or_path"):
            assert a.get(key) == b.get(key), key


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_exact(family, tmp_path):
    model = build(family, kind="cls", num_labels=3, problem_type="multi_label_classification")
    _randomise_batchnorm_stats(model)
    x = torch.randn(2, 12, 150)
    with torch.no_grad():
        logits = model(x).logits
        features = model.encoder(x).pooler_output

    model.save_pretrained(tmp_path / "cls")
    files = set(os.listdir(tmp_path / "cls"))
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    config = json.loads((tmp_path / "cls" / "config.json").read_text())
    assert {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"} <= set(config["auto_map"])

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls").eval()
    assert type(loaded) is type(model)
    assert loaded.config.problem_type == "multi_label_classification"
    sd, sd_loaded = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd_loaded.keys()
    for key in sd:
        assert torch.equal(sd[key], sd_loaded[key]), key
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, logits)

    # the bare encoder, saved on its own, reloads through AutoModel
    model.encoder.save_pretrained(tmp_path / "enc")
    encoder = AutoModel.from_pretrained(tmp_path / "enc").eval()
    assert type(encoder) is type(model.encoder)
    with torch.no_grad():
        assert torch.equal(encoder(x).pooler_output, features)

    # the classifier checkpoint also loads as a bare encoder (the head is dropped)
    encoder2 = AutoModel.from_pretrained(tmp_path / "cls").eval()
    with torch.no_grad():
        assert torch.equal(encoder2(x).pooler_output, features)


def test_save_load_keeps_float32_and_config(tmp_path):
    model = build("resnet1d", kind="cls", num_labels=4, id2label={0: "N", 1: "A", 2: "O", 3: "~"})
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path, dtype=torch.float32)
    assert next(loaded.parameters()).dtype == torch.float32
    assert loaded.config.id2label == {0: "N", 1: "A", 2: "O", 3: "~"}


_REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tac_ecg_hf" or name.startswith("tac_ecg_hf."):
                raise ImportError("tac_ecg_hf is hidden in this test")
            return None

    sys.meta_path.insert(0, _Block())
    sys.path = [p for p in sys.path if "tac_ecg_hf" not in p and p not in ("", ".")]
    try:
        import tac_ecg_hf  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("tac_ecg_hf must not be importable here")

    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    result = {}
    for name in sys.argv[1:]:
        x = torch.load(f"{name}/x.pt")
        config = AutoConfig.from_pretrained(f"{name}/cls", trust_remote_code=True)
        cls_model = AutoModelForSequenceClassification.from_pretrained(f"{name}/cls", trust_remote_code=True).eval()
        enc_model = AutoModel.from_pretrained(f"{name}/cls", trust_remote_code=True).eval()
        with torch.no_grad():
            logits = cls_model(x).logits
            pooled = enc_model(x).pooler_output
        torch.save({"logits": logits, "pooled": pooled}, f"{name}/out.pt")
        result[name] = [type(config).__module__, type(cls_model).__name__, type(enc_model).__name__]
    assert not any(m == "tac_ecg_hf" or m.startswith("tac_ecg_hf.") for m in sys.modules)
    print(json.dumps(result))
    """
)


def test_trust_remote_code_without_package(tmp_path):
    """A saved checkpoint loads through the Auto classes where tac_ecg_hf is not installed."""
    expected = {}
    for family in ("xresnet1d", "ecg_transformer"):
        model = build(family, kind="cls", num_labels=3, problem_type="multi_label_classification")
        _randomise_batchnorm_stats(model)
        x = torch.randn(2, 12, 120)
        with torch.no_grad():
            expected[family] = (model(x).logits, model.encoder(x).pooler_output)
        model.save_pretrained(tmp_path / family / "cls")
        torch.save(x, tmp_path / family / "x.pt")
    (tmp_path / "load.py").write_text(_REMOTE_SCRIPT)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["HF_MODULES_CACHE"] = str(tmp_path / "hf_modules")
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-I", "load.py", "xresnet1d", "ecg_transformer"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["xresnet1d"][1:] == ["XResNet1dForSequenceClassification", "XResNet1dModel"]
    assert result["ecg_transformer"][1:] == ["ECGTransformerForSequenceClassification", "ECGTransformerModel"]
    assert result["xresnet1d"][0].startswith("transformers_modules")
    for family, (logits, pooled) in expected.items():
        out = torch.load(tmp_path / family / "out.pt")
        # close, not bit-equal: the child process may run another number of torch threads than this one (a test
        # before may have set it), and the pointwise convs' batched matmuls sum in an order that depends on it
        torch.testing.assert_close(out["logits"], logits, rtol=1e-5, atol=1e-6, msg=family)
        torch.testing.assert_close(out["pooled"], pooled, rtol=1e-5, atol=1e-6, msg=family)


# ----------------------------------------------------------------------------------------------------------------
# import cost
# ----------------------------------------------------------------------------------------------------------------


def test_import_is_fast():
    """``import tac_ecg_hf`` against ``import torch`` timed in the same test (a ratio, so that load from other
    processes on a shared machine hits both): PEFT, datasets and the training modules load lazily."""

    def seconds(module: str) -> float:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return time.perf_counter() - start

    torch_s = min(seconds("torch") for _ in range(2))
    package_s = min(seconds("tac_ecg_hf") for _ in range(2))
    assert package_s < 5 * torch_s, f"import tac_ecg_hf took {package_s:.1f} s, import torch {torch_s:.1f} s"
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, tac_ecg_hf; print(sorted({'peft', 'datasets'} & set(sys.modules)))"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.stdout.strip() == "[]", proc.stdout


def test_version():
    assert isinstance(tac_ecg_hf.__version__, str)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_strided_avg_pool_equals_torch_avg_pool_with_ceil_mode(dtype):
    """The XResNet1d shortcut's pool (strided slices) gives nn.AvgPool1d(k, ceil_mode=True)'s values and input
    gradients, on even and odd lengths (the last window then holds fewer steps), and is that module otherwise."""
    from tac_ecg_hf.models.encoders.layers import StridedAvgPool1d

    g = torch.Generator().manual_seed(0)
    for k in (2, 3):
        pool, ref = StridedAvgPool1d(k), torch.nn.AvgPool1d(k, ceil_mode=True)
        assert isinstance(pool, torch.nn.AvgPool1d) and pool.state_dict() == {}
        for length in (k, k + 1, 63, 125, 250):
            x = torch.randn(3, 5, length, generator=g).to(dtype).requires_grad_()
            out, expected = pool(x), ref(x)
            assert out.shape == expected.shape and out.dtype == expected.dtype
            grad = torch.randn(expected.shape, generator=g).to(dtype)
            (got_grad,) = torch.autograd.grad(out, x, grad)
            (ref_grad,) = torch.autograd.grad(expected, x, grad)
            tol = dict(rtol=1e-2, atol=1e-2) if dtype == torch.bfloat16 else dict(rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(out, expected, **tol)
            torch.testing.assert_close(got_grad, ref_grad, **tol)
    unbatched = torch.randn(5, 9, generator=g).to(dtype)  # (channels, time): torch's own path
    torch.testing.assert_close(StridedAvgPool1d(2)(unbatched), torch.nn.AvgPool1d(2, ceil_mode=True)(unbatched))


@pytest.mark.parametrize("family", ["xresnet1d", "resnet1d", "inception1d"])
def test_inference_overwrites_only_the_new_tensors_it_made(family, monkeypatch):
    """Gradients off, the conv blocks' ReLU and the residual blocks' add + ReLU run in place (``layers.add_relu``,
    ``layers.act_on_new``) and inception1d's 1x1 convs run as matmuls: the input, every hidden state and the
    logits are those of the same eval-mode model with gradients on, where nothing runs in place."""
    calls, relu_ = [], torch.relu_

    def counted(x):
        calls.append(tuple(x.shape))
        return relu_(x)

    monkeypatch.setattr(torch, "relu_", counted)  # what act_on_new calls; nn.ReLU(inplace=False) does not
    model = build(family, kind="cls", num_labels=3)
    _randomise_batchnorm_stats(model)
    x = torch.randn(3, 12, 800)  # long enough for the pointwise-matmul path (48 steps and more)
    x_before = x.clone()
    reference = model(x, output_hidden_states=True)
    assert calls == []  # gradients on: nothing in place
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
    assert len(calls) >= 3  # every conv block and residual block of the tiny model took the in-place path
    assert torch.equal(x, x_before)
    torch.testing.assert_close(out.logits, reference.logits.detach(), rtol=1e-5, atol=1e-5)
    assert len(out.hidden_states) == len(reference.hidden_states)
    for ours, theirs in zip(out.hidden_states, reference.hidden_states):  # none overwritten by a later block
        torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-5)


def test_add_relu_is_in_place_only_where_the_sum_keeps_the_main_tensor_dtype_and_shape():
    from tac_ecg_hf.models.encoders.layers import add_relu

    relu = nn.ReLU()
    main, residual = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    expected = torch.relu(main + residual)
    with torch.no_grad():
        same = add_relu(main, residual, relu)
    assert same.data_ptr() == main.data_ptr() and torch.equal(same, expected)
    low = torch.randn(2, 3, 5).bfloat16()  # a bfloat16 path plus a float32 shortcut promotes to float32
    with torch.no_grad():
        promoted = add_relu(low, residual, relu)
    assert promoted.dtype == torch.float32 and torch.equal(promoted, torch.relu(low + residual))
    narrow = torch.randn(2, 1, 5)  # broadcast to a larger shape than main's: a new tensor
    with torch.no_grad():
        wider = add_relu(narrow, residual, relu)
    assert wider.shape == (2, 3, 5) and torch.equal(wider, torch.relu(narrow + residual))
    grad_main = torch.randn(2, 3, 5, requires_grad=True)  # gradients on: never in place
    out = add_relu(grad_main, residual, relu)
    assert out.data_ptr() != grad_main.data_ptr()
    out.sum().backward()
    assert torch.equal(grad_main.grad, ((grad_main + residual) > 0).float())


def test_the_in_place_broadcast_check_agrees_with_torch():
    from tac_ecg_hf.models.encoders.layers import _broadcasts_to

    shapes = [(), (5,), (1,), (3, 1), (3, 5), (2, 3, 5), (2, 1, 5), (1, 3, 1), (4, 3, 5), (2, 3, 5, 1), (0, 5)]
    for a in shapes:
        for target in shapes:
            try:
                fits = torch.broadcast_shapes(a, target) == torch.Size(target)
            except RuntimeError:
                fits = False
            assert _broadcasts_to(torch.Size(a), torch.Size(target)) == fits, (a, target)
