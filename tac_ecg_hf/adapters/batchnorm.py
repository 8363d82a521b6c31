"""Frozen BatchNorm statistics while adapters (LRC, LoRA) or a linear probe train on a frozen encoder.

``Trainer`` calls ``model.train()`` before every step, which puts every BatchNorm in training mode: a frozen encoder's
running statistics would then drift with each batch, so an adapter saved after training no longer matches the
encoder it is loaded on, and adapters of other tasks sharing the encoder change too.
:func:`freeze_batchnorm_statistics` is the one mechanism tac-ecg-hf uses against it: ``LRCModel`` calls it for
``LRCConfig(freeze_base_batchnorm=True)``, ``training.build_classifier`` for LoRA and the linear probe.
"""

from __future__ import annotations

from torch import nn

__all__ = ["freeze_batchnorm_statistics", "has_frozen_batchnorm_statistics"]

#: attribute set on each BatchNorm the hook is registered on: True while its statistics are frozen. A flag on the
#: module (rather than a registry of hook handles) stays consistent when the model is deep-copied or pickled.
_FLAG = "tac_ecg_freeze_statistics"


def _keep_running_statistics(module: nn.Module, args) -> None:
    # Runs right before the BatchNorm's own forward, whichever module called it, so it also holds when a sub-module
    # (say the encoder of a classifier) is called directly. A BatchNorm whose affine parameters are trained again is
    # left alone: its statistics then belong to the training.
    frozen = not any(p.requires_grad for p in module.parameters(recurse=False))
    if module.training and frozen and getattr(module, _FLAG, False):
        module.eval()


def freeze_batchnorm_statistics(model: nn.Module, freeze: bool = True) -> int:
    """Keep every BatchNorm of ``model`` whose affine parameters are frozen (``requires_grad=False``) in eval mode, so
    its running statistics never change while the rest of the model trains.

    A forward pre-hook on each BatchNorm puts it back in eval mode before it runs (``model.train()`` may be called
    at any time, as ``Trainer`` does). Calling it again is harmless; ``freeze=False`` turns it off. Returns the number
    of BatchNorm layers it now applies to.
    """
    count = 0
    for module in model.modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        if not hasattr(module, _FLAG):
            module.register_forward_pre_hook(_keep_running_statistics)
        setattr(module, _FLAG, bool(freeze))
        count += bool(freeze)
    return count


def has_frozen_batchnorm_statistics(module: nn.Module) -> bool:
    """Whether :func:`freeze_batchnorm_statistics` applies to this BatchNorm."""
    return bool(getattr(module, _FLAG, False))
