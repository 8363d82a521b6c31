"""Prediction without transformers or PEFT: the command line's single-record path (``tac-ecg predict RECORD``).

Why it exists: on this 2-core CPU, importing transformers' modelling code takes about 2 s and PEFT 0.3 s more, longer
than ``import torch`` itself (1.2-1.3 s), and ``from_pretrained`` adds its weight-conversion machinery. One
prediction needs none of it: the network is a few convolutions whose layers are plain torch
(``models/encoders/layers.py``), preprocessing is :class:`~tac_ecg_hf.data.preprocessing.ECGPreprocessor`, and an
LRC-Adapter is two 1x1 convolutions per adapted layer (``adapters/lrc_core.py``). This module builds exactly those
modules from a model folder and its safetensors files, and hands them to the same
:class:`~tac_ecg_hf.inference.ECGTaskClassifier` as the transformers path, so windows, averaging, thresholds and
decisions are one code path.

It is a fast path, not a second loader: it takes a checkpoint only when it can vouch for every part of it, and
otherwise returns ``None`` so that the caller uses the transformers + PEFT path, which then reports any problem with
its own error. It takes:

* an encoder of a family in :data:`~tac_ecg_hf.models.encoders.layers.NETWORK_BUILDERS` (XResNet1d, ResNet1d), saved
  as a bare encoder in one ``model.safetensors``, whose ``config.json`` passes the checks below (the same bounds as
  the encoder configs') and whose tensors match the network built from it one to one, by name and shape;
* LRC-Adapters (serial after ``BatchNorm1d`` layers, or parallel beside ``Conv1d`` layers) with a task head, saved in
  ``adapter_model.safetensors`` with the ``encoder_fingerprint`` of exactly these encoder weights, whose settings pass
  ``check_lrc_fields`` (the checks of ``LRCConfig``) and whose tensors are exactly those PEFT would inject for its
  ``target_modules``;
* feature extractor settings that ``ECGPreprocessor`` accepts (the same class ``ECGFeatureExtractor`` is built on).

Anything else (LoRA baselines, fully fine-tuned classifiers, the other four families, sharded or pickle weights,
adapters without a fingerprint, any check failing) goes to the transformers path. ``TAC_ECG_LITE=0`` turns this
path off. ``tests/test_lite.py`` checks that both paths give the same probabilities on every bundled adapter.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from .adapters.lrc_core import check_lrc_fields, lrc_scaling, parallel_update, serial_update
from .models.encoders.layers import (
    NETWORK_BUILDERS,
    AdaptivePool1d,
    ECGClassificationHead,
    check_input_values,
    forward_resnet_features,
)
from .models.encoders.limits import (
    MAX_DEPTH,
    MAX_IN_CHANNELS,
    MAX_KERNEL_SIZE,
    MAX_NUM_SAMPLES,
    MAX_SAMPLING_RATE,
    MAX_WIDTH,
    resnet1d_stage_widths,
)

logger = logging.getLogger(__name__)

#: encoder config fields: the input format (required), the training-only ones (optional), each family's network
_INPUT_FIELDS = ("in_channels", "lead_names", "sampling_rate", "num_samples", "pooling")
_OPTIONAL_FIELDS = ("classifier_dropout", "initializer_range")
FAMILY_FIELDS = {
    "xresnet1d": ("layers", "block_widths", "stem_widths", "expansion", "kernel_size"),
    "resnet1d": ("layers", "base_width", "kernel_size", "stem_kernel_size"),
}
_CONFIG_BOOKKEEPING = {"architectures", "auto_map", "model_type", "dtype", "torch_dtype", "transformers_version"}

#: fields of an LRC-Adapter's adapter_config.json: LRCConfig's and those PEFT's PeftConfig writes
LRC_FIELDS = (
    "r", "alpha", "variant", "dropout", "target_modules", "exclude_modules", "kernel_sizes", "head_module",
    "task_name", "labels", "problem_type", "freeze_base_batchnorm", "init_weights", "encoder_signature",
    "encoder_fingerprint", "thresholds", "metrics",
)
_PEFT_FIELDS = ("peft_type", "base_model_name_or_path", "revision", "task_type", "inference_mode", "auto_mapping",
                "peft_version")
_HEAD = "head.classifier"
_PEFT_PREFIX = "base_model.model."


class _NotLite(Exception):
    """This checkpoint is not one the fast path takes (the reason is logged at debug level)."""


def lite_enabled() -> bool:
    return os.environ.get("TAC_ECG_LITE", "1").strip().lower() not in ("0", "false", "no", "off")


def load_lite_classifier(model_path: str | os.PathLike, tasks: list[str], allow_pickle: bool = False):
    """An :class:`~tac_ecg_hf.inference.ECGTaskClassifier` for ``tasks`` of the local model folder ``model_path``
    built without transformers or PEFT, or ``None`` where this path does not take the checkpoint (see the module
    docstring; the caller then loads it with ``ECGTaskClassifier.from_pretrained``).

    The safetensors-only policy is the transformers path's: a pickle-only folder raises
    :class:`~tac_ecg_hf.safety.UnsafeCheckpointError` unless ``allow_pickle``, and is then left to that path."""
    from .safety import check_adapter_files, check_model_files

    path = Path(model_path)
    if not lite_enabled() or not all((path / task / "adapter_config.json").is_file() for task in tasks):
        return None  # a task without an adapter: ECGTaskClassifier.from_pretrained says which there are
    # the safetensors policy, checked in the transformers path's order
    if check_model_files(path, allow_pickle=allow_pickle) is False:  # an allowed pickle-only encoder
        return None
    for task in tasks:
        check_adapter_files(path / task, allow_pickle=allow_pickle)
    try:
        return _load(path, list(dict.fromkeys(tasks)))
    except _NotLite as why:
        logger.debug("tac_ecg_hf.lite: %s: %s; using transformers", path, why)
        return None


def _load(path: Path, tasks: list[str]):
    from .adapters.fingerprint import state_dict_fingerprint
    from .inference import ECGTaskClassifier, TaskHead

    config = _encoder_config(path)
    weights = path / "model.safetensors"
    if not weights.is_file() or (path / "model.safetensors.index.json").is_file():
        raise _NotLite("no single model.safetensors")
    adapters = {task: _adapter(path / task, task) for task in tasks}
    extractors = {task: _preprocessor(path, task) for task in tasks}
    with torch.device("meta"):  # no allocation, no random init: every tensor comes from the file
        model = LiteECGClassifier(config)
    state = _load_safetensors(weights)
    _check_same_tensors(model.encoder.state_dict(), state, "encoder")
    model.encoder.load_state_dict(state, strict=True, assign=True)
    fingerprint = state_dict_fingerprint(state)
    for task, (settings, _) in adapters.items():
        if settings.encoder_fingerprint != fingerprint:
            raise _NotLite(f"the {task} adapter was trained on other encoder weights")
    for task, (settings, file) in adapters.items():
        model.add_task(task, settings, _load_safetensors(file))
    heads = {
        task: TaskHead(list(settings.labels), settings.problem_type, settings.thresholds)
        for task, (settings, _) in adapters.items()
    }
    return ECGTaskClassifier(model, path, tasks, extractors, heads)


# ----------------------------------------------------------------------------------------------------------------
# the settings


def _read(path: Path) -> dict:
    from .safety import read_json_object

    if not path.is_file():
        raise _NotLite(f"no {path.name}")
    try:
        return read_json_object(path, what="settings")
    except ValueError as err:
        raise _NotLite(str(err)) from None


def _is_int(value, low: int, high: int, odd: bool = False) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high and (not odd or value % 2 == 1)
    )


def _int_list(value, high: int, max_len: int = MAX_DEPTH) -> bool:
    return isinstance(value, list) and 1 <= len(value) <= max_len and all(_is_int(v, 1, high) for v in value)


def _encoder_config(path: Path) -> SimpleNamespace:
    """The encoder's ``config.json`` as a namespace, if this path can vouch for it (else ``_NotLite``)."""
    data = _read(path / "config.json")
    model_type = data.get("model_type")
    if model_type not in FAMILY_FIELDS:
        raise _NotLite(f"model_type {model_type!r} is not one of {sorted(FAMILY_FIELDS)}")
    family = FAMILY_FIELDS[model_type]
    unknown = set(data) - set(_INPUT_FIELDS) - set(_OPTIONAL_FIELDS) - set(family) - _CONFIG_BOOKKEEPING
    missing = [name for name in (*_INPUT_FIELDS, *family) if name not in data]
    if unknown or missing:
        raise _NotLite(f"config fields {sorted(unknown)} unknown / {missing} missing")
    architectures = data.get("architectures")
    if architectures is not None and (not isinstance(architectures, list) or len(architectures) != 1
                                      or not str(architectures[0]).endswith("Model")):
        raise _NotLite(f"architectures {architectures!r} is not a bare encoder")
    c = SimpleNamespace(**{k: data[k] for k in (*_INPUT_FIELDS, *family)}, model_type=model_type)
    ok = (
        _is_int(c.in_channels, 1, MAX_IN_CHANNELS)
        and _is_int(c.sampling_rate, 1, MAX_SAMPLING_RATE)
        and _is_int(c.num_samples, 1, MAX_NUM_SAMPLES)
        and isinstance(c.lead_names, list)
        and len(c.lead_names) == c.in_channels
        and all(isinstance(name, str) for name in c.lead_names)
        and c.pooling in ("avgmax", "avg")
        and _is_int(c.kernel_size, 1, MAX_KERNEL_SIZE, odd=True)
        and _int_list(c.layers, MAX_DEPTH)
    )
    dropout, init = data.get("classifier_dropout", 0.1), data.get("initializer_range", 0.02)
    ok = ok and isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0 <= dropout < 1
    ok = ok and isinstance(init, (int, float)) and not isinstance(init, bool) and math.isfinite(init) and 0 < init <= 1
    if ok and model_type == "xresnet1d":
        ok = (
            _int_list(c.stem_widths, MAX_WIDTH, max_len=16)
            and sum(c.layers) + len(c.stem_widths) <= MAX_DEPTH
            and _is_int(c.expansion, 1, 64)
            and _int_list(c.block_widths, MAX_WIDTH // c.expansion, max_len=len(c.layers))
            and len(c.block_widths) == len(c.layers)
        )
        width = c.block_widths[-1] * c.expansion if ok else 0
    elif ok:
        ok = (
            len(c.layers) <= 16
            and sum(c.layers) <= MAX_DEPTH
            and _is_int(c.base_width, 1, MAX_WIDTH)
            and _is_int(c.stem_kernel_size, 1, MAX_KERNEL_SIZE, odd=True)
        )
        width = resnet1d_stage_widths(c.base_width, len(c.layers))[-1] if ok else 0
        ok = ok and width <= MAX_WIDTH
    if not ok:
        raise _NotLite("a config value is out of the encoder configs' bounds")
    c.feature_size = 2 * width if c.pooling == "avgmax" else width
    return c


def _adapter(folder: Path, task: str) -> tuple[SimpleNamespace, Path]:
    """An LRC-Adapter's settings (checked as ``LRCConfig`` checks them) and its weights file."""
    data = _read(folder / "adapter_config.json")
    if data.get("peft_type") != "LRC_ADAPTER":
        raise _NotLite(f"{task} is a {data.get('peft_type')!r} adapter")
    if set(data) - set(LRC_FIELDS) - set(_PEFT_FIELDS) or set(LRC_FIELDS) - set(data):
        raise _NotLite(f"{task}: adapter_config.json fields differ from LRCConfig's")
    settings = SimpleNamespace(**{k: data[k] for k in LRC_FIELDS})
    try:
        check_lrc_fields(settings)
    except ValueError as err:
        raise _NotLite(f"{task}: {err}") from None
    if not settings.encoder_fingerprint or not settings.labels or settings.head_module != _HEAD:
        raise _NotLite(f"{task}: no encoder fingerprint, labels or {_HEAD} head")
    if not isinstance(settings.target_modules, str) or settings.exclude_modules or settings.kernel_sizes:
        raise _NotLite(f"{task}: target_modules is not one pattern (or modules are excluded, kernels chosen)")
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise _NotLite(f"{task}: no adapter_model.safetensors")
    return settings, weights


def _preprocessor(path: Path, task: str):
    from .data.preprocessing import ECGPreprocessor
    from .inference import preprocessor_folder

    folder = preprocessor_folder(path, task)
    if folder is None:
        raise _NotLite("no preprocessor_config.json")
    try:
        return ECGPreprocessor(**_read(folder / "preprocessor_config.json"))
    except (ValueError, TypeError) as err:
        raise _NotLite(f"{folder}/preprocessor_config.json: {err}") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file in float32, as ``from_pretrained`` loads these models."""
    from safetensors.torch import load_file

    try:
        state = load_file(path, device="cpu")
    except Exception as err:  # safetensors' own error types; the transformers path reports it properly
        raise _NotLite(f"{path}: {err}") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _check_same_tensors(expected: dict, found: dict, what: str) -> None:
    shapes = {k: tuple(v.shape) for k, v in expected.items()}
    if shapes != {k: tuple(v.shape) for k, v in found.items()}:
        raise _NotLite(f"the {what} tensors do not match the network built from config.json")


# ----------------------------------------------------------------------------------------------------------------
# the modules


class LiteECGEncoder(nn.Module):
    """The bare encoder of the transformers models (``ECGEncoderModel``): the same network, state dict and forward."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        NETWORK_BUILDERS[config.model_type](self, config)
        self.pool = AdaptivePool1d(config.pooling)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        check_input_values(input_values, self.config)
        hidden_state, _ = forward_resnet_features(self, input_values)
        return self.pool(hidden_state)


@dataclass
class LiteOutput:
    logits: torch.Tensor


class _Adapted(nn.Module):
    """A frozen layer with the LRC-Adapters of several tasks, of which the active one runs (as PEFT's layers)."""

    def __init__(self, base: nn.Module, variant: str):
        super().__init__()
        self.base_layer, self.variant = base, variant
        self.down, self.up = nn.ModuleDict(), nn.ModuleDict()
        self.scaling: dict[str, float] = {}
        self.active: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if self.variant == "serial":
            return self.adapt_base_output(out)
        task = self.active
        if task not in self.down:
            return out
        return parallel_update(out, x, self.down[task], self.up[task], self.scaling[task])

    def adapt_base_output(self, out: torch.Tensor) -> torch.Tensor:
        """The active serial adapter applied to an output of the base layer (``LRCSerial.adapt_base_output``: what
        ``ConvBnAct1d`` calls after folding the BatchNorm this wraps into the conv before it)."""
        if self.variant != "serial":
            raise TypeError("a parallel LRC-Adapter needs the base layer's input; call the layer itself")
        task = self.active
        if task not in self.down:
            return out
        return serial_update(out, self.down[task], self.up[task], self.scaling[task])


class LiteECGClassifier(nn.Module):
    """Encoder + per-task LRC-Adapters and heads; ``set_adapter(task)`` switches all of them, ``peft_config`` names
    the tasks, and ``forward(input_values=...)`` returns ``.logits``: what ``ECGTaskClassifier`` uses of a
    ``PeftModel``."""

    def __init__(self, config):
        super().__init__()
        self.encoder = LiteECGEncoder(config)
        self.heads = nn.ModuleDict()
        self.peft_config: dict[str, SimpleNamespace] = {}
        self._adapted: dict[str, _Adapted] = {}
        self._active: str | None = None
        self._feature_size = config.feature_size

    def _targets(self, settings) -> dict[str, nn.Module]:
        """The layers PEFT injects this adapter into: the named modules of the classifier (``encoder.*`` and the
        ``head.classifier`` it replaces) that ``target_modules`` matches in full, as ``check_target_module_exists``."""
        with torch.device("meta"):
            head = ECGClassificationHead(self._feature_size, len(settings.labels), 0.0)
        names = {f"encoder.{n}" if n else "encoder": m for n, m in self.encoder.named_modules()}
        for name, module in self._adapted.items():  # a layer another task adapts is matched as its base layer
            names = {n: m for n, m in names.items() if not n.startswith(name + ".")}
            names[name] = module.base_layer
        names.update({"head": head, "head.dropout": head.dropout, _HEAD: head.classifier})
        return {n: m for n, m in names.items() if re.fullmatch(settings.target_modules, n)}

    def add_task(self, task: str, settings, state: dict[str, torch.Tensor]) -> None:
        targets = self._targets(settings)
        if _HEAD not in targets:
            raise _NotLite(f"{task}: target_modules does not name the head")
        expected, layers = {}, {}
        for name, module in targets.items():
            if name == _HEAD:
                continue
            if settings.variant == "serial" and isinstance(module, nn.BatchNorm1d):
                c, r = module.num_features, settings.r
                down, up = nn.Conv1d(c, r, 1, device="meta"), nn.Conv1d(r, c, 1, device="meta")
            elif settings.variant == "parallel" and isinstance(module, nn.Conv1d):
                if module.kernel_size[0] == 1:
                    continue  # LRCModel adapts kernels larger than 1 unless kernel_sizes says otherwise
                if module.groups != 1 or module.padding_mode != "zeros":
                    raise _NotLite(f"{task}: {name} is not a plain convolution")
                down = nn.Conv1d(module.in_channels, settings.r, module.kernel_size, stride=module.stride,
                                 padding=module.padding, dilation=module.dilation, bias=False, device="meta")
                up = nn.Conv1d(settings.r, module.out_channels, 1, bias=False, device="meta")
            else:
                raise _NotLite(f"{task}: a {settings.variant} adapter on a {type(module).__name__} ({name})")
            layers[name] = (down, up)
            for part, layer in (("lrc_down", down), ("lrc_up", up)):
                for key, tensor in layer.state_dict().items():
                    expected[f"{_PEFT_PREFIX}{name}.{part}.{key}"] = tensor
        head = nn.Linear(self._feature_size, len(settings.labels), device="meta")
        for key, tensor in head.state_dict().items():
            expected[f"{_PEFT_PREFIX}{_HEAD}.lrc_head.{key}"] = tensor
        _check_same_tensors(expected, state, f"{task} adapter")
        for name, (down, up) in layers.items():
            prefix = f"{_PEFT_PREFIX}{name}."
            for part, layer in (("lrc_down", down), ("lrc_up", up)):
                layer.load_state_dict({k.removeprefix(prefix + part + "."): v for k, v in state.items()
                                       if k.startswith(prefix + part + ".")}, assign=True)
            adapted = self._adapted.get(name) or self._wrap(name, settings.variant)
            if adapted.variant != settings.variant:
                raise _NotLite(f"{task}: {name} has adapters of two variants")
            adapted.down[task], adapted.up[task] = down, up
            adapted.scaling[task] = lrc_scaling(settings)
        prefix = f"{_PEFT_PREFIX}{_HEAD}.lrc_head."
        head.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)},
                             assign=True)
        self.heads[task] = head
        self.peft_config[task] = settings

    def _wrap(self, name: str, variant: str) -> _Adapted:
        parent_name, _, child = name.removeprefix("encoder.").rpartition(".")
        parent = self.encoder.get_submodule(parent_name)
        adapted = _Adapted(getattr(parent, child), variant)
        setattr(parent, child, adapted)
        self._adapted[name] = adapted
        return adapted

    def set_adapter(self, task: str) -> None:
        if task not in self.heads:
            raise ValueError(f"No adapter for task {task!r}; this model has {list(self.heads)}.")
        self._active = task
        for adapted in self._adapted.values():
            adapted.active = task

    def forward(self, input_values: torch.Tensor, **kwargs) -> LiteOutput:
        if self._active is None:
            raise ValueError("call set_adapter('<task>') first: each task has its own adapter and head.")
        return LiteOutput(logits=self.heads[self._active](self.encoder(input_values)))
