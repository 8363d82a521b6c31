"""The CETP loss across processes: under ``accelerate launch`` with two CPU processes (gloo), the loss each process
computes on its shard equals the single-process loss on the whole batch, and one DDP step moves every weight by the
single-process step scaled by 1/world size (the DDP gradient average), the temperature included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from support.cetp_ddp import LEARNING_RATE, build_model, global_batch
from support.launch import launch_two_processes

from tac_ecg_hf.models.cetp import CETPLoss, gather_features

SCRIPT = Path(__file__).resolve().parent / "support" / "cetp_ddp.py"


def test_without_a_process_group_the_features_are_the_global_batch():
    features = torch.randn(4, 8, requires_grad=True)
    assert gather_features(features) is features
    ecg, text = (torch.nn.functional.normalize(torch.randn(5, 8), dim=-1) for _ in range(2))
    scale = torch.tensor(10.0)
    logits = scale * ecg @ text.t()
    labels = torch.arange(5)
    cross_entropy = torch.nn.functional.cross_entropy
    expected = (cross_entropy(logits, labels) + cross_entropy(logits.t(), labels)) / 2
    torch.testing.assert_close(CETPLoss()(ecg, text, scale), expected)


def test_loss_and_step_under_accelerate_launch_match_one_process(tmp_path):
    out = tmp_path / "out"
    run = launch_two_processes([str(SCRIPT), str(out)], tmp_path / "hf_home")
    assert run.returncode == 0, run.stderr[-4000:]
    ddp = json.loads((out / "ddp.json").read_text())
    assert ddp["num_processes"] == 2  # two real processes, not one process seeing itself alone

    from safetensors.torch import load_file

    model = build_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    ecg, text = global_batch()
    loss = model(input_values=ecg, text_pooled=text).loss
    loss.backward()
    optimizer.step()
    for rank_loss in ddp["losses"]:  # every process computed the loss over the global batch
        assert rank_loss == pytest.approx(loss.item(), abs=1e-6)

    after = load_file(out / "ddp_after.safetensors")
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    moved = [name for name in trained if not torch.equal(model.state_dict()[name], before[name])]
    assert "logit_scale" in moved and any(n.startswith("ecg_model.") for n in moved)
    assert any(n.startswith("ecg_projection.") for n in moved) and any(n.startswith("text_projection.") for n in moved)
    for name in trained:
        single_step = model.state_dict()[name] - before[name]
        ddp_step = after[name] - before[name]
        # DDP averages the processes' gradients: each holds the part of its own samples, so the step is 1/world size
        torch.testing.assert_close(ddp_step, single_step / ddp["num_processes"], atol=1e-5, rtol=1e-4, msg=name)
