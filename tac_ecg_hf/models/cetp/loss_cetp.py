"""The CETP contrastive loss as a module, in the style of open_clip's ``ClipLoss``.

Under data-parallel training (``accelerate launch``, DDP) each process holds a shard of the batch. Contrasting only
against the local shard would make the task easier with more processes (fewer negatives); so the features of all
processes are gathered and every process computes the loss over the *global* batch, as open_clip does. The gather
carries no gradient; each process puts its own local features (with their gradients) back in its slice of the
gathered tensor, so every process back-propagates through exactly its own samples (open_clip's
``gather_with_grad=False``; the DDP gradient average then scales the gradient by 1/world size, which the learning rate
absorbs). The temperature is used whole by every process, so its gradient would come out whole on each and stay whole
after the average; it is scaled by 1/world size as well, so that a DDP step is the single-process step on the global
batch at learning rate / world size for every parameter (open_clip leaves the temperature's at full scale).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """All processes' features concatenated in rank order, the local slice keeping its gradient; the input itself when
    no process group is running."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return features
    gathered = [torch.zeros_like(features) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, features.detach().contiguous())
    gathered[dist.get_rank()] = features
    return torch.cat(gathered)


class CETPLoss(nn.Module):
    """Symmetric InfoNCE over the global batch: the mean of ECG->text and text->ECG cross-entropy with the matching
    pairs on the diagonal of ``logit_scale * ecg @ text.T``. Features are L2-normalised embeddings."""

    def forward(
        self, ecg_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
    ) -> torch.Tensor:
        all_ecg = gather_features(ecg_features)
        all_text = gather_features(text_features)
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if world > 1:  # same value; gradient 1/world, as the features' (see the module docstring)
            logit_scale = logit_scale.detach() + (logit_scale - logit_scale.detach()) / world
        logits_per_ecg = logit_scale * all_ecg @ all_text.t()
        labels = torch.arange(len(logits_per_ecg), device=logits_per_ecg.device)
        return (
            nn.functional.cross_entropy(logits_per_ecg, labels)
            + nn.functional.cross_entropy(logits_per_ecg.t(), labels)
        ) / 2
