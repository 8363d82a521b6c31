"""Building blocks shared by the tac-ecg-hf ECG encoders: input checks, conv blocks, pooling, heads.

This file is copied next to a saved checkpoint (``trust_remote_code``), so it only imports
``torch``, ``transformers``, the standard library and relative modules.
"""

import os
from dataclasses import dataclass

import sys

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ModelOutput, SequenceClassifierOutput

from .configuration_ecg_base import ECGEncoderConfig


@dataclass
class ECGEncoderOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, channels, time)`): last feature map.
        pooler_output (`torch.FloatTensor` of shape `(batch, config.feature_size)`): pooled embedding.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None


def check_input_values(input_values: torch.Tensor, config: ECGEncoderConfig) -> None:
    """Refuse inputs the encoder would silently misread, with a message saying how to fix them."""
    if not isinstance(input_values, torch.Tensor):
        raise TypeError(f"input_values must be a torch.Tensor, got {type(input_values).__name__}.")
    if input_values.dim() == 2:
        raise ValueError(
            f"input_values has shape {tuple(input_values.shape)}; expected (batch, {config.in_channels} leads, samples). "
            "Add a batch dimension with input_values.unsqueeze(0)."
        )
    if input_values.dim() != 3:
        raise ValueError(
            f"input_values has shape {tuple(input_values.shape)}; expected (batch, {config.in_channels} leads, samples)."
        )
    leads = input_values.shape[1]
    if leads != config.in_channels:
        hint = ""
        if input_values.shape[2] == config.in_channels:
            hint = " It looks time-first: pass input_values.transpose(1, 2)."
        raise ValueError(
            f"input_values has {leads} leads in dim 1 (shape {tuple(input_values.shape)}) but this encoder reads "
            f"{config.in_channels} leads {config.lead_names}.{hint} Use tac_ecg_hf.data.ECGPreprocessor to reorder, "
            "zero-fill or select leads by name."
        )
    if not torch.isfinite(input_values).all():
        bad = (~torch.isfinite(input_values)).sum().item()
        raise ValueError(
            f"input_values contains {bad} NaN/inf values; clean or interpolate the record first "
            "(tac_ecg_hf.data.check_signal names the leads)."
        )


# ----------------------------------------------------------------------------------------------------------------
# safetensors only


#: weight files that are Python pickles (``torch.load`` can run code from them) / safetensors files
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
SAFE_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


class UnsafeCheckpointError(OSError):
    """A checkpoint holds only pickle weights (``*.bin``), which can run arbitrary code when loaded, and the user
    did not ask for them explicitly (``use_safetensors=False`` for models, ``allow_pickle=True`` for adapters)."""


def pickle_only_checkpoint(folder, safe_files=SAFE_WEIGHT_FILES, pickle_files=PICKLE_WEIGHT_FILES) -> list:
    """The pickle weight files of a local ``folder`` that has no safetensors weights (empty list otherwise, and
    for anything that is not a local directory, such as a Hub id)."""
    try:
        if folder is None or not os.path.isdir(folder):
            return []
    except (TypeError, ValueError):
        return []
    if any(os.path.isfile(os.path.join(folder, name)) for name in safe_files):
        return []
    return [name for name in pickle_files if os.path.isfile(os.path.join(folder, name))]


def _pickle_refusal(where, files) -> str:
    return (
        f"{where} holds only a pickle checkpoint ({', '.join(files)}); tac-ecg-hf loads safetensors only by default, "
        "because unpickling a file can run arbitrary code. Convert it to safetensors (load it once where you trust "
        "it and call save_pretrained, which writes model.safetensors), or pass use_safetensors=False explicitly if "
        "you trust the file."
    )


class SafetensorsOnlyMixin:
    """``from_pretrained`` with ``use_safetensors=True`` as the default: a checkpoint with only
    ``pytorch_model.bin`` is refused (:class:`UnsafeCheckpointError`) unless ``use_safetensors=False`` is passed."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, use_safetensors=None, **kwargs):
        if use_safetensors is not None:  # an explicit choice by the user
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, use_safetensors=use_safetensors, **kwargs)
        folder = pretrained_model_name_or_path
        if folder is not None and kwargs.get("subfolder"):
            folder = os.path.join(folder, kwargs["subfolder"])
        files = pickle_only_checkpoint(folder)
        if files:
            raise UnsafeCheckpointError(_pickle_refusal(os.fspath(folder), files))
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, use_safetensors=True, **kwargs)
        except UnsafeCheckpointError:
            raise
        except OSError as err:
            # a Hub repository (or a folder without weights): say why safetensors are required
            if "safetensors" in str(err) and (folder is None or not os.path.isdir(folder)):
                raise UnsafeCheckpointError(
                    f"{err} tac-ecg-hf loads safetensors only by default; if {pretrained_model_name_or_path} has only "
                    "a pickle checkpoint (pytorch_model.bin), convert it to safetensors, or pass "
                    "use_safetensors=False explicitly if you trust it."
                ) from err
            raise


class ConvBnAct1d(nn.Module):
    """Conv1d -> BatchNorm1d -> activation. Serial LRC-Adapters are inserted right after ``bn``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, act=True, zero_bn=False):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False
        )
        self.bn = nn.BatchNorm1d(out_channels)
        self.bn.zero_init = zero_bn
        self.act = nn.ReLU(inplace=False) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class AdaptivePool1d(nn.Module):
    """Global pooling over time: concatenated average+max (``avgmax``) or average (``avg``)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        avg = x.mean(dim=-1)
        if self.mode == "avg":
            return avg
        return torch.cat([avg, x.amax(dim=-1)], dim=-1)


class ECGPreTrainedModel(SafetensorsOnlyMixin, PreTrainedModel):
    config_class = ECGEncoderConfig
    base_model_prefix = "encoder"
    main_input_name = "input_values"
    supports_gradient_checkpointing = False
    #: regexes of module names where serial LRC-Adapters go (BatchNorm1d after a conv); None: not supported
    _lrc_serial_targets: list[str] | None = None
    #: regexes of Conv1d module names for the parallel (mergeable) LRC variant; None: every Conv1d with kernel > 1
    _lrc_parallel_targets: list[str] | None = None

    def full_auto_map(self) -> dict:
        """auto_map naming the config, the bare encoder and the classifier of this family, so that a saved
        checkpoint loads with ``trust_remote_code=True`` through any Auto class where the package is missing."""
        module = sys.modules[type(self).__module__]
        stem = type(self).__module__.rsplit(".", 1)[-1]
        auto_map = {"AutoConfig": f"{type(self.config).__module__.rsplit('.', 1)[-1]}.{type(self.config).__name__}"}
        for obj in vars(module).values():
            if isinstance(obj, type) and getattr(obj, "config_class", None) is self.config_class and obj.__module__ == module.__name__:
                if issubclass(obj, ECGForSequenceClassificationBase):
                    auto_map["AutoModelForSequenceClassification"] = f"{stem}.{obj.__name__}"
                elif issubclass(obj, ECGEncoderModel):
                    auto_map["AutoModel"] = f"{stem}.{obj.__name__}"
        return auto_map

    def save_pretrained(self, save_directory, *args, **kwargs):
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **self.full_auto_map()}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, nn.Conv1d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)):
            if getattr(module, "zero_init", False):
                nn.init.zeros_(module.weight)
            else:
                nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
                module.num_batches_tracked.zero_()
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if "weight" in name:
                    nn.init.orthogonal_(param)
                else:
                    nn.init.zeros_(param)
                    # forget-gate bias 1 helps LSTMs remember early on
                    hidden = param.shape[0] // 4
                    param[hidden : 2 * hidden].fill_(1.0)
        elif isinstance(module, nn.MultiheadAttention):
            if module.in_proj_weight is not None:
                nn.init.xavier_uniform_(module.in_proj_weight)
            if module.in_proj_bias is not None:
                nn.init.zeros_(module.in_proj_bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.initializer_range)


class ECGEncoderModel(ECGPreTrainedModel):
    """Shared forward of every encoder: checks input, runs ``self.features`` and pools."""

    def __init__(self, config):
        super().__init__(config)
        self.pool = AdaptivePool1d(config.pooling)

    def forward_features(self, input_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, input_values: torch.Tensor, return_dict: bool | None = None, **kwargs):
        check_input_values(input_values, self.config)
        hidden = self.forward_features(input_values)
        pooled = self.pool(hidden)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return (hidden, pooled)
        return ECGEncoderOutput(last_hidden_state=hidden, pooler_output=pooled)


class ECGClassificationHead(nn.Module):
    def __init__(self, feature_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_size, num_labels)

    def forward(self, pooled):
        return self.classifier(self.dropout(pooled))


class ECGForSequenceClassificationBase(ECGPreTrainedModel):
    """Encoder + dropout + linear head. ``problem_type`` picks BCE (multi-label) or CE (single-label)."""

    _encoder_class: type = None
    accepts_loss_kwargs = False

    def __init__(self, config):
        super().__init__(config)
        if config.problem_type is None:
            config.problem_type = "single_label_classification" if config.num_labels > 1 else "regression"
        self.num_labels = config.num_labels
        self.encoder = self._encoder_class(config)
        self.head = ECGClassificationHead(config.feature_size, config.num_labels, config.classifier_dropout)
        self.post_init()

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs):
        outputs = self.encoder(input_values, return_dict=True)
        logits = self.head(outputs.pooler_output)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.problem_type == "multi_label_classification":
                if labels.shape != logits.shape:
                    raise ValueError(
                        f"multi-label labels must have shape {tuple(logits.shape)} (batch, num_labels), got {tuple(labels.shape)}."
                    )
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
            elif self.config.problem_type == "single_label_classification":
                labels = labels.view(-1).long()
                if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[-1]):
                    raise ValueError(f"class ids must lie in [0, {logits.shape[-1]}), got {labels.min()}..{labels.max()}.")
                loss = nn.functional.cross_entropy(logits, labels)
            else:
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).squeeze(-1))
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            output = (logits, outputs.pooler_output)
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=None)
