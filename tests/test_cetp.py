"""Unit tests of the CETP dual encoder (tiny random BERT text tower), plus one overfit test with real MiniLM."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.tiny import TINY_TEXT, tiny_cetp, tiny_config
from torch.nn import functional as F
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizer

from tac_ecg_hf import CETPConfig, CETPModel
from tac_ecg_hf.models.cetp import CETPLoss, CETPOutput, default_text_model_path
from tac_ecg_hf.models.encoders import XResNet1dModel

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "normal ecg sinus rhythm atrial fibrillation flutter left right bundle branch block myocardial infarction "
    "st t change conduction disturbance hypertrophy premature beat ventricular"
).split()
REPO = Path(__file__).resolve().parents[1]


def tiny_ecg_config(**overrides):
    return tiny_config("xresnet1d", **overrides)


def tiny_text_config():
    return BertConfig(**TINY_TEXT)


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})


def batch(n: int = 4, length: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    input_values = torch.randn(n, 12, 120, generator=g)
    input_ids = torch.randint(5, 100, (n, length), generator=g)
    attention_mask = torch.ones(n, length, dtype=torch.long)
    attention_mask[1, 4:] = 0  # some padding, so masked mean pooling matters
    attention_mask[3, 2:] = 0
    return input_values, input_ids, attention_mask


def manual_infonce(logits: torch.Tensor) -> torch.Tensor:
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


# ----------------------------------------------------------------------------------------------------------------


def test_config_sub_configs_and_validation():
    config = CETPConfig(ecg_config=tiny_ecg_config().to_dict(), text_config=tiny_text_config().to_dict())
    assert config.ecg_config.model_type == "xresnet1d"
    assert config.ecg_config.feature_size == tiny_ecg_config().feature_size
    assert config.text_config.model_type == "bert" and config.text_config.hidden_size == 32
    assert math.isclose(config.logit_scale_init_value, math.log(1 / 0.07))
    with pytest.raises(ValueError, match="text_pooling"):
        CETPConfig(text_pooling="max")


def test_forward_loss_is_symmetric_infonce():
    model = tiny_cetp()
    input_values, input_ids, attention_mask = batch()
    with torch.no_grad():
        out = model(input_values=input_values, input_ids=input_ids, attention_mask=attention_mask)
        ecg = model.get_ecg_features(input_values)
        text = model.get_text_features(input_ids, attention_mask)
    assert isinstance(out, CETPOutput)
    assert out.logits_per_ecg.shape == (4, 4)
    assert torch.allclose(out.ecg_embeds, ecg, atol=1e-6) and torch.allclose(out.text_embeds, text, atol=1e-6)
    scale = model.logit_scale.exp()
    logits = scale * ecg @ text.t()
    assert torch.allclose(out.logits_per_ecg, logits, atol=1e-5)
    assert torch.allclose(out.loss, manual_infonce(logits), atol=1e-5)
    assert torch.allclose(CETPLoss()(ecg, text, scale), manual_infonce(logits), atol=1e-6)
    # logits per text are the transpose
    assert torch.equal(out.logits_per_text, out.logits_per_ecg.t())
    # return_loss=False skips the loss
    with torch.no_grad():
        assert model(input_values=input_values, input_ids=input_ids, return_loss=False).loss is None


def test_features_are_l2_normalised_and_pooling_masks_padding():
    model = tiny_cetp()
    input_values, input_ids, attention_mask = batch()
    with torch.no_grad():
        ecg = model.get_ecg_features(input_values)
        text = model.get_text_features(input_ids, attention_mask)
        raw = model.get_text_features(input_ids, attention_mask, normalize=False)
        # changing padded tokens does not change a padded row's embedding
        changed = input_ids.clone()
        changed[1, 4:] = 7
        text_changed = model.get_text_features(changed, attention_mask)
    assert ecg.shape == (4, 16) and text.shape == (4, 16)
    assert torch.allclose(ecg.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(4), atol=1e-3)
    assert torch.allclose(F.normalize(raw, dim=-1), text, atol=1e-6)
    assert torch.allclose(text_changed[1], text[1], atol=1e-5)


def test_cls_pooling():
    model = tiny_cetp(text_pooling="cls")
    input_values, input_ids, attention_mask = batch()
    with torch.no_grad():
        text = model.get_text_features(input_ids, attention_mask)
        hidden = model.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        expected = F.normalize(model.text_projection(hidden[:, 0]), dim=-1)
    assert torch.allclose(text, expected, atol=1e-6)


def test_logit_scale_is_clamped():
    model = tiny_cetp(max_logit_scale=100.0)
    input_values, input_ids, attention_mask = batch()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
        out = model(input_values=input_values, input_ids=input_ids, attention_mask=attention_mask)
    cosine = out.ecg_embeds @ out.text_embeds.t()
    assert torch.allclose(out.logits_per_ecg, 100.0 * cosine, atol=1e-4)
    assert out.logits_per_ecg.abs().max() <= 100.0 + 1e-4


def test_gradients_reach_both_towers_and_logit_scale():
    model = tiny_cetp().train()
    input_values, input_ids, attention_mask = batch()
    out = model(input_values=input_values, input_ids=input_ids, attention_mask=attention_mask)
    out.loss.backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad.abs() > 0
    assert model.ecg_model.stem[0].conv.weight.grad.abs().sum() > 0
    assert model.text_model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.text_model.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert model.ecg_projection.projection.weight.grad.abs().sum() > 0
    assert model.text_projection.projection.weight.grad.abs().sum() > 0


def test_init_weights():
    model = tiny_cetp()
    assert math.isclose(model.logit_scale.item(), math.log(1 / 0.07), rel_tol=1e-6)
    for head in (model.ecg_projection, model.text_projection):
        assert torch.all(head.projection.bias == 0) and torch.all(head.norm.weight == 1)
        assert 0.005 < head.projection.weight.std().item() < 0.05
    a, b = tiny_cetp(seed=3).state_dict(), tiny_cetp(seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_save_load_round_trip(tmp_path):
    model = tiny_cetp()
    with torch.no_grad():
        model.logit_scale.fill_(3.3)
        for module in model.ecg_model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.3, 0.3)
    input_values, input_ids, attention_mask = batch()
    with torch.no_grad():
        ref = model(input_values=input_values, input_ids=input_ids, attention_mask=attention_mask)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))

    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, CETPModel)
    assert type(loaded.ecg_model) is XResNet1dModel and isinstance(loaded.text_model, BertModel)
    assert loaded.config.projection_dim == 16
    assert loaded.config.ecg_config.to_dict()["layers"] == [1, 1]
    sd, sd_loaded = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd_loaded.keys()
    for key in sd:
        assert torch.equal(sd[key], sd_loaded[key]), key
    with torch.no_grad():
        out = loaded(input_values=input_values, input_ids=input_ids, attention_mask=attention_mask)
    assert torch.equal(out.logits_per_ecg, ref.logits_per_ecg)
    assert torch.equal(out.loss, ref.loss)


def _perturbed(module: torch.nn.Module) -> torch.nn.Module:
    """Shift all weights so that any re-initialisation would be noticed."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.123)
        for name, buf in module.named_buffers():
            if "running_mean" in name:
                buf.add_(0.5)
    return module


def test_from_ecg_text_pretrained_keeps_tower_weights(tmp_path):
    torch.manual_seed(0)
    ecg = _perturbed(XResNet1dModel(tiny_ecg_config()))
    text = _perturbed(BertModel(tiny_text_config()))
    ecg_sd = {k: v.clone() for k, v in ecg.state_dict().items()}
    text_sd = {k: v.clone() for k, v in text.state_dict().items()}

    # from model objects
    model = CETPModel.from_ecg_text_pretrained(ecg, text, projection_dim=16)
    for key, value in model.ecg_model.state_dict().items():
        assert torch.equal(value, ecg_sd[key]), key
    for key, value in model.text_model.state_dict().items():
        assert torch.equal(value, text_sd[key]), key
    assert model.config.projection_dim == 16
    assert math.isclose(model.logit_scale.item(), math.log(1 / 0.07), rel_tol=1e-6)

    # from checkpoint paths
    ecg.save_pretrained(tmp_path / "ecg")
    text.save_pretrained(tmp_path / "text")
    model = CETPModel.from_ecg_text_pretrained(str(tmp_path / "ecg"), str(tmp_path / "text"), projection_dim=8)
    for key, value in model.ecg_model.state_dict().items():
        assert torch.equal(value, ecg_sd[key]), key
    for key, value in model.text_model.state_dict().items():
        assert torch.equal(value, text_sd[key]), key
    assert model.text_projection.projection.weight.shape == (8, 32)

    # from an ECG config: a fresh encoder
    model = CETPModel.from_ecg_text_pretrained(tiny_ecg_config(), text, projection_dim=8)
    assert type(model.ecg_model) is XResNet1dModel


def test_zero_shot_scores(tokenizer):
    model = tiny_cetp()
    input_values = torch.randn(3, 12, 120)
    prompts = {
        "NORM": ["normal ecg", "sinus rhythm"],
        "AF": ["atrial fibrillation"],
        "MI": ["myocardial infarction", "st change", "t change"],
        "CD": ["left bundle branch block"],
    }
    scores = model.zero_shot_scores(input_values, prompts, tokenizer)
    assert scores.shape == (3, 4)
    assert torch.isfinite(scores).all()
    scale = model.logit_scale.exp().item()
    assert scores.abs().max() <= scale + 1e-4  # scaled cosines
    # a list of prompt lists gives the same
    assert torch.allclose(model.zero_shot_scores(input_values, list(prompts.values()), tokenizer), scores, atol=1e-6)
    # and a class's score is the scaled cosine with the mean of its normalised prompt embeddings
    with torch.no_grad():
        texts = model.encode_texts(prompts["NORM"], tokenizer)
        cls = F.normalize(texts.mean(0), dim=-1)
        expected = scale * model.get_ecg_features(input_values) @ cls
    assert torch.allclose(scores[:, 0], expected, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# real MiniLM text tower
# ----------------------------------------------------------------------------------------------------------------


def test_minilm_overfits_eight_pairs():
    path = default_text_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    ecg = XResNet1dModel(tiny_ecg_config())
    model = CETPModel.from_ecg_text_pretrained(ecg, path, projection_dim=32, projection_dropout=0.0)
    assert model.text_model.config.hidden_size == 384
    reference = AutoModel.from_pretrained(path, dtype=torch.float32)
    ref_sd = reference.state_dict()
    for key, value in model.text_model.state_dict().items():  # pre-trained weights kept, not re-initialised
        assert torch.equal(value, ref_sd[key]), key
    del reference, ref_sd

    texts = [
        "normal sinus rhythm",
        "atrial fibrillation with rapid ventricular response",
        "left bundle branch block",
        "right bundle branch block",
        "inferior myocardial infarction",
        "left ventricular hypertrophy",
        "first degree av block",
        "sinus bradycardia",
    ]
    tok = tokenizer(texts, padding=True, return_tensors="pt")
    input_values = torch.randn(8, 12, 120, generator=torch.Generator().manual_seed(1))

    # text dropout off; the ECG BatchNorm normalises with batch statistics (train mode), which keeps the eight
    # random records apart from the first step on
    model.eval()
    model.ecg_model.train()
    optimizer = torch.optim.AdamW(
        [
            {"params": model.text_model.parameters(), "lr": 2e-5},
            {"params": [p for n, p in model.named_parameters() if not n.startswith("text_model.")], "lr": 1e-3},
        ],
        weight_decay=0.0,
    )
    losses = []
    for _ in range(10):
        out = model(input_values=input_values, **tok)
        losses.append(out.loss.item())
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        final = model(input_values=input_values, **tok)
    assert losses[0] > 1.0  # about log(8) at the start
    assert final.loss.item() < 0.5 * losses[0], losses + [final.loss.item()]
    # the matching pairs win
    assert (final.logits_per_ecg.argmax(-1) == torch.arange(8)).float().mean() >= 0.75


# ----------------------------------------------------------------------------------------------------------------
# a text tower referenced by id, not copied into the checkpoint
# ----------------------------------------------------------------------------------------------------------------


def test_referenced_text_tower_is_left_out_loaded_and_verified(tmp_path):
    from safetensors import safe_open

    from tac_ecg_hf.safety import CheckpointMismatchError, load_encoder

    torch.manual_seed(0)
    BertModel(tiny_text_config()).save_pretrained(tmp_path / "text")
    model = CETPModel.from_ecg_text_pretrained(XResNet1dModel(tiny_ecg_config()), str(tmp_path / "text"),
                                               projection_dim=16)
    assert model.config.text_model_name_or_path == str(tmp_path / "text") and model.config.text_model_fingerprint
    model.save_pretrained(tmp_path / "cetp")
    with safe_open(tmp_path / "cetp" / "model.safetensors", framework="pt") as fh:
        keys = list(fh.keys())
    assert keys and not [k for k in keys if k.startswith("text_model.")]  # the frozen tower is not copied
    loaded = load_encoder(tmp_path / "cetp", CETPModel)  # every tensor in place: the tower comes from its reference
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # another text tower under the same reference is refused
    torch.manual_seed(1)
    BertModel(tiny_text_config()).save_pretrained(tmp_path / "text")
    with pytest.raises(CheckpointMismatchError, match="is not the one this CETP model was trained with"):
        CETPModel.from_pretrained(tmp_path / "cetp")
    # a tower that was trained is saved with the model, and the reference dropped
    model.text_model.embeddings.word_embeddings.weight.data.add_(0.1)
    model.save_pretrained(tmp_path / "trained")
    assert CETPModel.from_pretrained(tmp_path / "trained").config.text_model_name_or_path is None


_DDP_LOSS_SCRIPT = """
import json, os
import torch
from accelerate import Accelerator
from tac_ecg_hf.models.cetp import CETPLoss

accelerator = Accelerator(cpu=True)
rank, world = accelerator.process_index, accelerator.num_processes
g = torch.Generator().manual_seed(0)
ecg = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1)
text = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1)
scale = torch.tensor(10.0)

reference_ecg = ecg.clone().requires_grad_(True)  # the single-process loss on the global batch, by hand
logits = scale * reference_ecg @ text.t()
target = torch.arange(8)
ce = torch.nn.functional.cross_entropy
reference = (ce(logits, target) + ce(logits.t(), target)) / 2
reference.backward()

shard = slice(rank * 8 // world, (rank + 1) * 8 // world)
local_ecg = ecg[shard].clone().requires_grad_(True)
loss = CETPLoss()(local_ecg, text[shard], scale)
loss.backward()
# one file per rank: two processes printing to one pipe can interleave their lines
with open(f"rank{rank}.json", "w") as fh:
    json.dump({"rank": rank, "world": world, "loss": loss.item(), "reference": reference.item(),
               "grad_error": (local_ecg.grad - reference_ecg.grad[shard]).abs().max().item()}, fh)
accelerator.wait_for_everyone()
accelerator.end_training()  # destroys the gloo group: exiting with it alive can abort (SIGABRT) at shutdown
"""


def test_cetp_loss_under_two_processes_equals_the_single_process_loss(tmp_path):
    """Under ``accelerate launch`` with two CPU processes, each process contrasts its half of the batch against the
    gathered global batch: the loss equals the single-process loss on the whole batch, and the gradient of each
    process's own features equals the single-process gradient of those rows."""
    script = tmp_path / "ddp_loss.py"
    script.write_text(_DDP_LOSS_SCRIPT)
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
         "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert sorted(r["rank"] for r in results) == [0, 1] and all(r["world"] == 2 for r in results)
    for r in results:
        assert r["loss"] == pytest.approx(r["reference"], rel=1e-6)
        assert r["grad_error"] < 1e-6
