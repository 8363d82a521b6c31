"""One CETP training step on a global batch split between processes, for ``accelerate launch`` (test_cetp_loss.py).

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        tests/support/cetp_ddp.py OUT_DIR

Every process builds the same tiny CETP model (same seed), takes its slice of the same global batch, runs one SGD step
through accelerate's DDP wrapper (gloo on CPU) and the main process writes ``OUT_DIR/ddp.json`` (the loss of each
process) and ``OUT_DIR/ddp_after.safetensors`` (the weights after the step). The test compares them with the same step
in one process on the whole batch. The text tower is a tiny random BERT fed with pooled text states (``text_pooled``),
so nothing is downloaded; the model runs in eval mode (BatchNorm on running statistics, no dropout), as the loss of a
shard must not depend on batch statistics for the comparison to be exact.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

GLOBAL_BATCH = 8
LEARNING_RATE = 0.5
TEXT_HIDDEN = 16


def build_model():
    from transformers import BertConfig

    from tac_ecg_hf import CETPConfig, CETPModel, create_encoder_config

    torch.manual_seed(0)
    ecg = create_encoder_config("resnet1d", base_width=8, layers=[1, 1])
    text = BertConfig(hidden_size=TEXT_HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                      vocab_size=64, max_position_embeddings=32)
    config = CETPConfig(ecg_config=ecg.to_dict(), text_config=text.to_dict(), projection_dim=8, projection_dropout=0.0)
    model = CETPModel(config).eval()
    # frozen text tower, as in pre-training with cached text states (DDP needs every trainable parameter to get a
    # gradient: one that gets none holds back the all-reduce of its bucket)
    model.text_model.requires_grad_(False)
    return model


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(GLOBAL_BATCH, 12, 1000, generator=generator),
            torch.randn(GLOBAL_BATCH, TEXT_HIDDEN, generator=generator))


def main(out_dir: str) -> None:
    from accelerate import Accelerator
    from safetensors.torch import save_file

    accelerator = Accelerator(cpu=True)  # gloo between CPU processes (accelerate picks MULTI_CPU only with cpu=True)
    model = build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.eval()
    ecg, text = global_batch()
    shard = GLOBAL_BATCH // accelerator.num_processes
    rows = slice(accelerator.process_index * shard, (accelerator.process_index + 1) * shard)
    loss = model(input_values=ecg[rows], text_pooled=text[rows]).loss
    accelerator.backward(loss)
    optimizer.step()
    losses = accelerator.gather(loss.detach()[None]).tolist()
    if accelerator.is_main_process:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in accelerator.unwrap_model(model).state_dict().items()}
        save_file(state, out / "ddp_after.safetensors")
        (out / "ddp.json").write_text(json.dumps({"losses": losses, "num_processes": accelerator.num_processes}))
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1])
