"""LRCModel: the PEFT tuner that injects LRC-Adapters into a frozen tac-ecg-hf encoder."""

from __future__ import annotations

import re

import torch
from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from .config import LRCConfig
from .layer import LRCHead, LRCLayer, LRCParallel, LRCSerial


class AdapterMismatchError(ValueError):
    """An adapter was made for another encoder (architecture, width or lead count)."""


def _base_modules(model: nn.Module):
    """(name, module) of the base model, seeing through LRC layers already injected by other adapters."""
    wrapped: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(w + ".") for w in wrapped):
            continue
        if isinstance(module, LRCLayer):
            wrapped.append(name)
            yield name, module.get_base_layer()
        else:
            yield name, module


def _module_names_matching(model: nn.Module, patterns: list[str], module_type: type) -> list[str]:
    compiled = [re.compile(p) for p in patterns]
    return [
        name
        for name, module in _base_modules(model)
        if isinstance(module, module_type) and any(c.fullmatch(name) for c in compiled)
    ]


def default_target_modules(model: nn.Module, config: LRCConfig) -> list[str]:
    """The insertion points of an LRC-Adapter in a tac-ecg-hf encoder (see ``LRCConfig.target_modules``)."""
    if config.variant == "serial":
        patterns = getattr(model, "_lrc_serial_targets", None)
        targets = _module_names_matching(model, patterns, nn.BatchNorm1d) if patterns else []
    else:
        kernel_sizes = config.kernel_sizes
        targets = [
            name
            for name, module in _base_modules(model)
            if isinstance(module, nn.Conv1d)
            and module.groups == 1
            and (module.kernel_size[0] in kernel_sizes if kernel_sizes else module.kernel_size[0] > 1)
        ]
    if not targets:
        model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise ValueError(
            f"An LRC-Adapter ({config.variant}) has no insertion point in a {model_type!r} model: it adapts "
            "convolutional layers and this model has none that match. Use full fine-tuning or a linear probe "
            "(examples/finetune_baselines.py), or give LRCConfig(target_modules=[...]) explicitly."
        )
    return targets


def encoder_signature(model: nn.Module) -> dict | None:
    config = getattr(model, "config", None)
    return config.encoder_signature() if hasattr(config, "encoder_signature") else None


class LRCModel(BaseTuner):
    """
    Low-Rank Convolutional Adapters on a frozen ECG encoder (TAC-ECG). Several task adapters share one base model;
    each carries its own head, labels and loss type, and ``set_adapter(task)`` switches all of them at once.

    Example:
        >>> from peft import get_peft_model
        >>> from tac_ecg_hf import LRCConfig
        >>> peft_model = get_peft_model(base_model, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    """

    prefix: str = "lrc_"
    tuner_layer_cls = LRCLayer
    target_module_mapping: dict = {}

    # -- injection -------------------------------------------------------------------------------------------
    def inject_adapter(self, model: nn.Module, adapter_name: str, *args, **kwargs) -> None:
        config: LRCConfig = self.peft_config[adapter_name]
        self._check_encoder(model, config, adapter_name)
        if config.target_modules is None:
            config.target_modules = default_target_modules(model, config) + [config.head_module]
        elif isinstance(config.target_modules, list) and config.head_module not in config.target_modules:
            config.target_modules = list(config.target_modules) + [config.head_module]
        head = model.get_submodule(config.head_module) if _has_module(model, config.head_module) else None
        if head is None or not isinstance(head, (nn.Linear, LRCHead)):
            raise ValueError(
                f"LRCConfig.head_module={config.head_module!r} must name the classifier nn.Linear of the base model "
                "(tac-ecg-hf *ForSequenceClassification models use 'head.classifier')."
            )
        if config.labels is None:
            config.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        super().inject_adapter(model, adapter_name, *args, **kwargs)

    @staticmethod
    def _check_encoder(model: nn.Module, config: LRCConfig, adapter_name: str) -> None:
        signature = encoder_signature(model)
        if config.encoder_signature is None:
            config.encoder_signature = signature
            return
        if signature is not None and _normalise(signature) != _normalise(config.encoder_signature):
            diffs = _describe_difference(config.encoder_signature, signature)
            raise AdapterMismatchError(
                f"Adapter {adapter_name!r} (task {config.task_name!r}) was made for encoder {config.encoder_signature} "
                f"but the base model is {signature}: {diffs}. Load it on the encoder it was trained with "
                f"(base_model_name_or_path={config.base_model_name_or_path!r}) or train a new adapter for this encoder."
            )

    @staticmethod
    def _prepare_adapter_config(peft_config: LRCConfig, model_config: dict) -> LRCConfig:
        if peft_config.target_modules is None:
            raise ValueError("LRCConfig.target_modules could not be resolved for this model.")
        return peft_config

    def _create_and_replace(self, config: LRCConfig, adapter_name, target, target_name, parent, current_key, **kwargs):
        if isinstance(target, LRCLayer):
            target.update_layer(adapter_name, config)
            return
        if current_key == config.head_module or current_key.endswith("." + config.head_module):
            new_module = LRCHead(target, adapter_name, config)
        elif isinstance(target, nn.BatchNorm1d):
            new_module = LRCSerial(target, adapter_name, config)
        elif isinstance(target, nn.Conv1d):
            new_module = LRCParallel(target, adapter_name, config)
        else:
            raise ValueError(
                f"LRC-Adapter cannot adapt {current_key!r} ({type(target).__name__}): serial adapters go after "
                "BatchNorm1d layers and parallel adapters beside Conv1d layers."
            )
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _post_injection_hook(self, model: nn.Module, config: LRCConfig, adapter_name: str) -> None:
        self._sync_model_config(adapter_name)

    # -- task switching ---------------------------------------------------------------------------------------
    def set_adapter(self, adapter_name, inference_mode: bool = False) -> None:
        super().set_adapter(adapter_name, inference_mode=inference_mode)
        if isinstance(adapter_name, str):
            self._sync_model_config(adapter_name)

    def _sync_model_config(self, adapter_name: str) -> None:
        """Point the base model's labels and loss at the active task (heads differ per task)."""
        config = self.peft_config[adapter_name]
        model_config = getattr(self.model, "config", None)
        if model_config is None or not config.labels:
            return
        model_config.id2label = dict(enumerate(config.labels))
        model_config.label2id = {label: i for i, label in enumerate(config.labels)}
        model_config.problem_type = config.problem_type
        if hasattr(self.model, "num_labels"):
            self.model.num_labels = len(config.labels)

    # -- frozen BatchNorm ---------------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        if mode and any(self.peft_config[a].freeze_base_batchnorm for a in self.active_adapters if a in self.peft_config):
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in module.parameters(recurse=False)
                ):
                    module.eval()
        return self

    # -- merging ---------------------------------------------------------------------------------------------
    def _check_merge_allowed(self):
        super()._check_merge_allowed()
        for name, module in self.model.named_modules():
            if isinstance(module, LRCSerial) and any(a in module.lrc_down for a in self.active_adapters):
                raise ValueError(
                    f"Adapter(s) {self.active_adapters} are serial LRC-Adapters ({name}): they have a ReLU inside and "
                    "cannot be merged into the encoder. Train with LRCConfig(variant='parallel') to merge."
                )

    def merge_and_unload(self, progressbar: bool = False, safe_merge: bool = False, adapter_names=None) -> nn.Module:
        heads = {name: m for name, m in self.model.named_modules() if isinstance(m, LRCHead)}
        active = [a for a in self.active_adapters]
        if len(active) != 1:
            raise ValueError(f"merge_and_unload needs exactly one active task adapter, got {active}.")
        task_heads = {name: m.lrc_head[active[0]] for name, m in heads.items() if active[0] in m.lrc_head}
        self._sync_model_config(active[0])
        model = super().merge_and_unload(progressbar=progressbar, safe_merge=safe_merge, adapter_names=adapter_names)
        for name, head in task_heads.items():
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, head)
        if task_heads and getattr(model, "config", None) is not None:  # plain nn.Modules have no config
            model.config.num_labels = head.out_features
        self._sync_model_config(active[0])
        return model


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


def _normalise(value):
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def _describe_difference(expected: dict, actual: dict, prefix: str = "") -> str:
    parts = []
    for key in sorted(set(expected) | set(actual)):
        e, a = expected.get(key), actual.get(key)
        if isinstance(e, dict) and isinstance(a, dict):
            inner = _describe_difference(e, a, prefix + key + ".")
            if inner:
                parts.append(inner)
        elif _normalise(e) != _normalise(a):
            parts.append(f"{prefix}{key}: adapter {e!r} vs encoder {a!r}")
    return "; ".join(parts)
