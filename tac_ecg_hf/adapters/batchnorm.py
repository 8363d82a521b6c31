"""Frozen BatchNorm statistics while adapters (LRC, LoRA) or a linear probe train on a frozen encoder.

``Trainer`` calls ``model.train()`` before every step, which puts every BatchNorm in training mode: a frozen encoder's
running statistics would then drift with each batch, so an adapter saved after training no longer matches the
encoder it is loaded on, and adapters of other tasks sharing the encoder change too.
:func:`freeze_batchnorm_statistics` is the one mechanism tac-ecg-hf uses against it: ``LRCModel`` calls it for
``LRCConfig(freeze_base_batchnorm=True)``, ``training.build_classifier`` for LoRA and the linear probe.
"""

from __future__ import annotations

import weakref

from torch import nn

__all__ = ["freeze_batchnorm_statistics", "has_frozen_batchnorm_statistics"]

#: BatchNorm module -> handle of its forward pre-hook
_HOOKS: "weakref.WeakKeyDictionary[nn.Module, object]" = weakref.WeakKeyDictionary()


def _is_frozen(module: nn.Module) -> bool:
    return not any(p.requires_grad for p in module.parameters(recurse=False))


def _keep_running_statistics(module: nn.Module, args) -> None:
    # Runs right before the BatchNorm's own forward, whichever module called it, so it also holds when a sub-module
    # (say the encoder of a classifier) is called directly. A BatchNorm whose affine parameters are trained again is
    # left alone: its statistics then belong to the training.
    if module.training and _is_frozen(module):
        module.eval()


def freeze_batchnorm_statistics(model: nn.Module, freeze: bool = True) -> int:
    """Keep every BatchNorm of ``model`` whose affine parameters are frozen (``requires_grad=False``) in eval mode, so
    its running statistics never change while the rest of the model trains.

    A forward pre-hook on each BatchNorm puts it back in eval mode before it runs (``model.train()`` may be called
    at any time, as ``Trainer`` does). Calling it again is harmless; ``freeze=False`` removes the hooks. Returns the
    number of BatchNorm layers covered.
    """
    count = 0
    for module in model.modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        handle = _HOOKS.pop(module, None)
        if handle is not None:
            handle.remove()
        if freeze:
            _HOOKS[module] = module.register_forward_pre_hook(_keep_running_statistics)
            count += 1
    return count


def has_frozen_batchnorm_statistics(module: nn.Module) -> bool:
    """Whether :func:`freeze_batchnorm_statistics` covers this BatchNorm."""
    return module in _HOOKS
