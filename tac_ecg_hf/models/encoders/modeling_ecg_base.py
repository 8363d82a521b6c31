"""The transformers side of the tac-ecg-hf ECG encoders: the pre-trained model classes, the shared forward and the
classification base. The layers themselves are in ``layers.py`` (plain torch).

This file is copied next to a saved checkpoint (``trust_remote_code``), so it only imports
``torch``, ``transformers``, the standard library and relative modules.
"""

import json
import os
import sys

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention, SequenceClassifierOutput
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file

from .configuration_ecg_base import ConfigFieldError, ECGEncoderConfig
from .layers import (  # noqa: F401  (re-exported: the names this module always had)
    AdaptivePool1d,
    BatchNorm1d,
    ConvBnAct1d,
    ECGClassificationHead,
    check_input_values,
    conv_bn_values,
    forward_resnet_features,
)

# ----------------------------------------------------------------------------------------------------------------
# checkpoint size check


_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")


def _weights_bytes(pretrained_model_name_or_path, hub_kwargs: dict) -> tuple[int, str] | None:
    """(size in bytes, file name) of the safetensors weights of a checkpoint, or None where there are none (a
    pickle-only or missing checkpoint: ``from_pretrained`` then reports that itself)."""
    try:
        path = cached_file(pretrained_model_name_or_path, SAFE_WEIGHTS_NAME, **hub_kwargs)
        if path is not None:
            return os.path.getsize(path), SAFE_WEIGHTS_NAME
    except OSError:
        pass
    try:
        path = cached_file(pretrained_model_name_or_path, SAFE_WEIGHTS_INDEX_NAME, **hub_kwargs)
        if path is not None:
            with open(path, encoding="utf-8") as fh:
                total = json.load(fh).get("metadata", {}).get("total_size")
            if isinstance(total, int):
                return total, SAFE_WEIGHTS_INDEX_NAME
    except (OSError, ValueError, AttributeError):
        pass
    return None


def check_checkpoint_size(model_class: type, pretrained_model_name_or_path, config, kwargs: dict) -> None:
    """Refuse a ``config.json`` that implies far more values than its weights file can hold, before ``from_pretrained``
    builds anything: a corrupt or hostile config would otherwise allocate (and randomly initialise) gigabytes.
    The count comes from the config alone (``expected_num_values``), so the check costs microseconds.

    Only the encoder is counted (a classifier loads encoder-only checkpoints and creates its head), and a file is
    taken to hold at most one value per byte (safetensors stores 1 to 8 bytes per value).
    """
    hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if kwargs.get(key) is not None}
    if not isinstance(config, PreTrainedConfig):
        config = model_class.config_class.from_pretrained(
            config if config is not None else pretrained_model_name_or_path, **hub_kwargs
        )
    if not isinstance(config, ECGEncoderConfig):
        return
    found = _weights_bytes(pretrained_model_name_or_path, hub_kwargs)
    if found is None:
        return
    file_bytes, file_name = found
    encoder_class = getattr(model_class, "_encoder_class", None) or model_class
    needed = encoder_class.expected_num_values(config)
    if needed > file_bytes:
        raise ConfigFieldError(
            f"{type(config).__name__} ({config.model_type}): the config.json of {pretrained_model_name_or_path} "
            f"implies an encoder of {needed:,} values but {file_name} has only {file_bytes:,} bytes: the config does "
            "not describe these weights (a corrupt or mismatched config.json, or a truncated weights file); use the "
            "config and weights saved together by save_pretrained."
        )


# ----------------------------------------------------------------------------------------------------------------
# pre-trained model classes


class ECGPreTrainedModel(PreTrainedModel):
    config_class = ECGEncoderConfig
    base_model_prefix = "encoder"
    main_input_name = "input_values"
    supports_gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        """transformers 5 deprecated this property for ``is_activation_checkpointing`` (a FutureWarning on each read),
        and PEFT 0.21's ``PeftModel.__init__`` still reads it: every adapter load warned. Same answer, no warning."""
        return self.is_activation_checkpointing

    def full_auto_map(self) -> dict:
        """auto_map naming the config, the bare encoder and the classifier of this family, so that a saved
        checkpoint loads with ``trust_remote_code=True`` through any Auto class where the package is missing."""
        module = sys.modules[type(self).__module__]
        stem = type(self).__module__.rsplit(".", 1)[-1]
        auto_map = {"AutoConfig": f"{type(self.config).__module__.rsplit('.', 1)[-1]}.{type(self.config).__name__}"}
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and getattr(obj, "config_class", None) is self.config_class
                and obj.__module__ == module.__name__
            ):
                if issubclass(obj, ECGForSequenceClassificationBase):
                    auto_map["AutoModelForSequenceClassification"] = f"{stem}.{obj.__name__}"
                elif issubclass(obj, ECGEncoderModel):
                    auto_map["AutoModel"] = f"{stem}.{obj.__name__}"
        return auto_map

    def save_pretrained(self, save_directory, *args, **kwargs):
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **self.full_auto_map()}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, **kwargs):
        """``PreTrainedModel.from_pretrained`` in float32 unless a ``dtype`` is asked for (transformers keeps a
        checkpoint's dtype, and a half-precision ECG model would fail on the float32 batches its feature extractor
        makes; these models are small, and this CPU gains nothing from float16), after checking that the config fits
        the size of the weights file (:func:`check_checkpoint_size`) before any module is allocated."""
        kwargs.setdefault("dtype", torch.float32)
        if pretrained_model_name_or_path is not None and kwargs.get("use_safetensors") is not False:
            check_checkpoint_size(cls, pretrained_model_name_or_path, config, kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, config=config, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)  # Linear: normal(initializer_range); norms: ones/zeros; BatchNorm buffers reset
        if isinstance(module, nn.Conv1d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d) and getattr(module, "zero_init", False):
            init.zeros_(module.weight)  # last BatchNorm of a residual branch: each block starts as the identity
        elif isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if "weight" in name:
                    init.orthogonal_(param)
                else:
                    init.zeros_(param)
                    # forget-gate bias 1 helps LSTMs remember early on (a slice loses the "loaded" flag: check it)
                    if not getattr(param, "_is_hf_initialized", False):
                        hidden = param.shape[0] // 4
                        param[hidden : 2 * hidden].fill_(1.0)


class ECGEncoderModel(ECGPreTrainedModel):
    """Shared forward of every bare encoder: checks the input shape, runs :meth:`forward_features` and pools.

    ``hidden_states`` (with ``output_hidden_states=True``) are the feature maps after the stem and after each stage
    (or layer), each of shape ``(batch, channels, time)``, as transformers' ResNet returns them.
    """

    def __init__(self, config):
        super().__init__(config)
        self.pool = AdaptivePool1d(config.pooling)

    @classmethod
    def expected_num_values(cls, config) -> int:
        """Number of values (parameters and persistent buffers) in the state dict of ``cls(config)``, computed from
        the config without building anything (``check_checkpoint_size`` compares it with the weights file)."""
        raise NotImplementedError

    def forward_features(
        self, input_values: torch.Tensor, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """(last feature map of shape (batch, channels, time), the intermediate maps or None). The default runs a
        ``stem`` + ``stem_pool`` + ``stages`` network (the ResNet families); other families override it."""
        return forward_resnet_features(self, input_values, output_hidden_states)

    def forward(
        self,
        input_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        check_input_values(input_values, self.config)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        last_hidden_state, hidden_states = self.forward_features(input_values, output_hidden_states)
        pooled = self.pool(last_hidden_state)
        if not return_dict:
            return (last_hidden_state, pooled) + ((hidden_states,) if hidden_states is not None else ())
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=last_hidden_state, pooler_output=pooled, hidden_states=hidden_states
        )


class ECGForSequenceClassificationBase(ECGPreTrainedModel):
    """Encoder + dropout + linear head.

    The loss is ``self.loss_function`` (transformers' ``ForSequenceClassificationLoss``): ``config.problem_type``
    picks MSE (``regression``), cross-entropy (``single_label_classification``) or BCE
    (``multi_label_classification``); left unset, it is inferred from the first labels seen (integer class ids:
    single-label; float multi-hot rows: multi-label) and stored in the config.
    """

    _encoder_class: type = None
    accepts_loss_kwargs = False

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = self._encoder_class(config)
        self.head = ECGClassificationHead(config.feature_size, config.num_labels, config.classifier_dropout)
        self.post_init()

    def _check_labels(self, labels: torch.Tensor, logits: torch.Tensor) -> None:
        """Shape checks only (no device sync), saying what to fix; torch reports out-of-range class ids itself."""
        problem_type = self.config.problem_type
        if problem_type is None and self.config.num_labels > 1:  # what ForSequenceClassificationLoss will infer
            integer = labels.dtype in (torch.long, torch.int)
            problem_type = "single_label_classification" if integer else "multi_label_classification"
        if problem_type == "multi_label_classification" and labels.shape != logits.shape:
            hint = " (integer class ids need dtype torch.long)" if labels.dim() == 1 else ""
            raise ValueError(
                f"multi-label labels must have shape {tuple(logits.shape)} (batch, num_labels), got "
                f"{tuple(labels.shape)}{hint}."
            )
        if problem_type == "single_label_classification" and labels.numel() != logits.shape[0]:
            hint = " They look like multi-hot rows: use problem_type='multi_label_classification'." if (
                labels.shape == logits.shape
            ) else ""
            raise ValueError(
                f"single-label labels must be {logits.shape[0]} class ids (batch,), got shape "
                f"{tuple(labels.shape)}.{hint}"
            )

    def forward(
        self,
        input_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.encoder(input_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.head(outputs.pooler_output)
        loss = None
        if labels is not None:
            self._check_labels(labels, logits)
            loss = self.loss_function(labels, logits, self.config)
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
