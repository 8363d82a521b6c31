"""LRCModel: the PEFT tuner that injects LRC-Adapters into a frozen tac-ecg-hf encoder (laid out as PEFT's LoRA)."""

from __future__ import annotations

import re

from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer, check_target_module_exists
from torch import nn

from ..batchnorm import freeze_batchnorm_statistics
from ..errors import AdapterMismatchError
from ..fingerprint import encoder_fingerprint
from .config import LRCConfig, _short
from .constants import TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING
from .layer import SERIAL_BASE_LAYERS, LRCHead, LRCLayer, LRCParallel, LRCSerial, adapted_width

DEFAULT_HEAD_MODULE = "head.classifier"


def encoder_signature(model: nn.Module) -> dict | None:
    config = getattr(model, "config", None)
    return config.encoder_signature() if hasattr(config, "encoder_signature") else None


def _base(module: nn.Module) -> nn.Module:
    return module.get_base_layer() if isinstance(module, BaseTunerLayer) else module


def _is_head(config: LRCConfig, key: str) -> bool:
    head = config.head_module
    return bool(head) and (key == head or key.endswith("." + head))


def _kernel_selected(config: LRCConfig, module: nn.Module) -> bool:
    """For the parallel variant: whether a targeted Conv1d has a kernel size to adapt (default: larger than 1)."""
    base = _base(module)
    if config.variant != "parallel" or not isinstance(base, nn.Conv1d):
        return True
    k = base.kernel_size[0]
    return k in config.kernel_sizes if config.kernel_sizes else k > 1


class LRCModel(BaseTuner):
    """
    Low-Rank Convolutional Adapters on a frozen ECG encoder (TAC-ECG). Several task adapters share one base model;
    each carries its own head, labels and loss type, and ``set_adapter(task)`` switches all of them at once.

    Default insertion points come from ``TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING`` (by ``model_type`` and
    variant), as LoRA's do; they work on the bare ``*Model`` and on ``*ForSequenceClassification``.

    Example:
        >>> from peft import get_peft_model
        >>> from tac_ecg_hf import LRCConfig
        >>> peft_model = get_peft_model(base_model, LRCConfig.for_task("ptbxl-super"), adapter_name="ptbxl-super")
    """

    prefix: str = "lrc_"
    tuner_layer_cls = LRCLayer
    target_module_mapping = TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING

    # -- injection -------------------------------------------------------------------------------------------
    def inject_adapter(self, model: nn.Module, adapter_name: str, *args, **kwargs) -> None:
        config: LRCConfig = self.peft_config[adapter_name]
        # every check runs before the first module is replaced, so a refused adapter leaves the model untouched
        self._check_encoder(model, config, adapter_name)
        self._resolve_head(model, config)
        self._prepare_adapter_config(config, self.get_model_config(model))
        self._check_targets(model, config, adapter_name)
        super().inject_adapter(model, adapter_name, *args, **kwargs)

    def _prepare_adapter_config(self, peft_config: LRCConfig, model_config: dict) -> LRCConfig:
        """Default ``target_modules`` from the mapping (the variant picks the list), plus the task head."""
        if peft_config.target_modules is None:
            model_type = model_config.get("model_type")
            targets = self.target_module_mapping.get(model_type, {}).get(peft_config.variant)
            if targets is None:
                known = model_type in self.target_module_mapping
                raise ValueError(
                    f"An LRC-Adapter ({peft_config.variant}) has no default insertion point in a {model_type!r} model"
                    + (" (it has no convolutions: use variant='serial')" if known else "")
                    + "; give LRCConfig(target_modules=[...]) explicitly, or fine-tune it in full or with a linear "
                    "probe (examples/finetune.py --method full / linear)."
                )
            peft_config.target_modules = targets
        head = peft_config.head_module
        targets = peft_config.target_modules
        if head and isinstance(targets, str) and not re.fullmatch(targets, head):
            peft_config.target_modules = f"(?:{targets})|{re.escape(head)}"
        elif head and not isinstance(targets, str) and head not in targets:
            peft_config.target_modules = [*targets, head]
        return peft_config

    def _check_target_module_exists(self, peft_config: LRCConfig, key: str):
        result = check_target_module_exists(peft_config, key)
        if result and not _is_head(peft_config, key):
            return result if _kernel_selected(peft_config, self.model.get_submodule(key)) else False
        return result

    def _check_targets(self, model: nn.Module, config: LRCConfig, adapter_name: str) -> None:
        """Refuse targets the variant cannot adapt, a rank wider than a target, and an adapter whose
        ``target_modules`` match no encoder module (it would silently adapt the head only)."""
        wrapped = [name + "." for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
        found = 0
        for key, module in model.named_modules():
            if not key or any(key.startswith(w) for w in wrapped) or _is_head(config, key):
                continue
            if not check_target_module_exists(config, key) or not _kernel_selected(config, module):
                continue
            base = _base(module)
            self._new_module_class(config, base, key)  # raises for a type the variant cannot adapt
            width = adapted_width(base)
            if config.r > width:
                raise ValueError(
                    f"LRCConfig.r={config.r} exceeds the width {width} of {key} ({type(base).__name__}); a low-rank "
                    f"bottleneck needs r <= {width}: lower r, or leave that module out (exclude_modules=[...])."
                )
            found += 1
        if not found:
            model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
            raise ValueError(
                f"LRC-Adapter {adapter_name!r} ({config.variant}): target_modules={_short(config.target_modules)} "
                f"match no module of this {model_type!r} model that the variant can adapt, so only the head would be "
                "trained. "
                "Fix target_modules (or leave it unset for the defaults of tac-ecg-hf encoders), or fine-tune in full "
                "or with a linear probe (examples/finetune.py --method full / linear)."
            )

    def _resolve_head(self, model: nn.Module, config: LRCConfig) -> None:
        """Check ``head_module`` and take the task labels from the model where the config has none. A bare
        encoder (no classifier) gets a feature adapter without a head when ``head_module`` is the default."""
        if config.head_module is None:
            return
        try:
            head = _base(model.get_submodule(config.head_module))
        except AttributeError:
            head = None
        if isinstance(head, nn.Linear):
            if config.labels is None and getattr(model, "config", None) is not None:
                config.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
            return
        bare_encoder = getattr(model, "base_model", None) is model and not hasattr(model, "head")
        if head is None and config.head_module == DEFAULT_HEAD_MODULE and bare_encoder:
            config.head_module = None
            return
        raise ValueError(
            f"LRCConfig.head_module={config.head_module!r} must name the classifier nn.Linear of the base model "
            "(tac-ecg-hf *ForSequenceClassification models use 'head.classifier'; None adapts features only)."
        )

    @staticmethod
    def _new_module_class(config: LRCConfig, base: nn.Module, key: str) -> type:
        if _is_head(config, key):
            if isinstance(base, nn.Linear):
                return LRCHead
        elif config.variant == "serial" and isinstance(base, tuple(cls for cls, _ in SERIAL_BASE_LAYERS)):
            return LRCSerial
        elif config.variant == "parallel" and isinstance(base, nn.Conv1d):
            return LRCParallel
        raise ValueError(
            f"LRC-Adapter ({config.variant}) cannot adapt {key!r} ({type(base).__name__}): serial adapters follow "
            "BatchNorm1d, LayerNorm or LSTM/GRU layers, parallel ones sit beside Conv1d layers, and the head must be "
            "an nn.Linear."
        )

    @staticmethod
    def _create_new_module(config: LRCConfig, adapter_name: str, target: nn.Module, current_key: str) -> LRCLayer:
        """The LRC layer for ``target`` (dispatch on its type, as LoRA's ``_create_new_module`` does)."""
        return LRCModel._new_module_class(config, _base(target), current_key)(target, adapter_name, config)

    def _create_and_replace(self, config: LRCConfig, adapter_name, target, target_name, parent, current_key, **kwargs):
        if isinstance(target, LRCLayer):
            target.update_layer(adapter_name, config)
            return
        new_module = self._create_new_module(config, adapter_name, target, current_key)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _post_injection_hook(self, model: nn.Module, config: LRCConfig, adapter_name: str) -> None:
        self._sync_model_config(adapter_name)
        freeze_batchnorm_statistics(model, freeze=config.freeze_base_batchnorm)

    @staticmethod
    def _check_encoder(model: nn.Module, config: LRCConfig, adapter_name: str) -> None:
        """A new adapter records the encoder (signature and weights fingerprint); a loaded one must match it."""
        signature = encoder_signature(model)
        fingerprint = encoder_fingerprint(model)
        if config.encoder_signature is None and config.encoder_fingerprint is None:
            config.encoder_signature = signature
            config.encoder_fingerprint = fingerprint
            return
        where = (
            f"Load it on the encoder it was trained with (base_model_name_or_path={config.base_model_name_or_path!r}) "
            "or train a new adapter for this encoder."
        )
        if config.encoder_signature is not None and signature is not None:
            if _normalise(signature) != _normalise(config.encoder_signature):
                diffs = _describe_difference(config.encoder_signature, signature)
                raise AdapterMismatchError(
                    f"Adapter {adapter_name!r} (task {config.task_name!r}) was made for encoder "
                    f"{config.encoder_signature} but the base model is {signature}: {diffs}. {where}"
                )
        if config.encoder_fingerprint is not None and config.encoder_fingerprint != fingerprint:
            raise AdapterMismatchError(
                f"Adapter {adapter_name!r} (task {config.task_name!r}) was trained on encoder weights "
                f"{_short_hash(config.encoder_fingerprint)} but the base model's weights are "
                f"{_short_hash(fingerprint)} (same architecture, other weights). {where}"
            )

    # -- task switching ---------------------------------------------------------------------------------------
    def set_adapter(self, adapter_name, inference_mode: bool = False) -> None:
        super().set_adapter(adapter_name, inference_mode=inference_mode)
        if isinstance(adapter_name, str):
            self._sync_model_config(adapter_name)
            freeze_batchnorm_statistics(self.model, freeze=self.peft_config[adapter_name].freeze_base_batchnorm)

    def _sync_model_config(self, adapter_name: str) -> None:
        """Point the base model's labels and loss at the active task (heads differ per task)."""
        config = self.peft_config[adapter_name]
        model_config = getattr(self.model, "config", None)
        if model_config is None or not config.labels or not config.head_module:
            return
        model_config.id2label = dict(enumerate(config.labels))
        model_config.label2id = {label: i for i, label in enumerate(config.labels)}
        model_config.problem_type = config.problem_type
        if hasattr(self.model, "num_labels"):
            self.model.num_labels = len(config.labels)

    # -- merging ---------------------------------------------------------------------------------------------
    def _check_merge_allowed(self):
        super()._check_merge_allowed()
        for name, module in self.model.named_modules():
            if isinstance(module, LRCSerial) and any(a in module.lrc_down for a in self.active_adapters):
                raise ValueError(
                    f"Adapter(s) {self.active_adapters} are serial LRC-Adapters ({name}): they have a ReLU inside and "
                    "cannot be merged into the encoder. Train with LRCConfig(variant='parallel') to merge."
                )

    def merge_adapter(self, adapter_names: list[str] | None = None, safe_merge: bool = False) -> None:
        """Merge the (parallel) encoder adapters into the base convolutions; task heads stay as they are."""
        self._check_merge_allowed()
        for module in self.model.modules():
            if isinstance(module, LRCLayer) and not isinstance(module, LRCHead):
                module.merge(adapter_names=adapter_names, safe_merge=safe_merge)

    def merge_and_unload(self, progressbar: bool = False, safe_merge: bool = False, adapter_names=None) -> nn.Module:
        """Fold the active parallel adapter into the encoder and return the base model, with the task's head (its
        own label count) as the classifier and the model config pointing at the task's labels and loss."""
        active = list(adapter_names or self.active_adapters)
        if len(active) != 1:
            raise ValueError(f"merge_and_unload needs exactly one active task adapter, got {active}.")
        task = active[0]
        self._check_merge_allowed()
        for name, module in list(self.model.named_modules()):
            if isinstance(module, LRCHead):  # keep the task head explicitly: a head is replaced, not merged
                if task not in module.lrc_head:
                    raise ValueError(f"The head {name} has no head for task adapter {task!r}; cannot unload it.")
                parent_name, _, child = name.rpartition(".")
                parent = self.model.get_submodule(parent_name) if parent_name else self.model
                setattr(parent, child, module.lrc_head[task])
        self._sync_model_config(task)
        return super().merge_and_unload(progressbar=progressbar, safe_merge=safe_merge, adapter_names=adapter_names)


def _short_hash(fingerprint: str) -> str:
    return fingerprint[: len("sha256:") + 16] + "..." if fingerprint.startswith("sha256:") else repr(fingerprint)


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
