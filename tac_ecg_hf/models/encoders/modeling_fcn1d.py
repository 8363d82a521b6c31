"""FCN1d encoder."""

import torch
from torch import nn

from .configuration_fcn1d import FCN1dConfig
from .modeling_ecg_base import ConvBnAct1d, ECGEncoderModel, ECGForSequenceClassificationBase


class FCN1dModel(ECGEncoderModel):
    config_class = FCN1dConfig
    _lrc_serial_targets = [r"layers\.\d+\.bn"]

    def __init__(self, config: FCN1dConfig):
        super().__init__(config)
        layers, channels = [], config.in_channels
        for width, k in zip(config.widths, config.kernel_sizes):
            layers.append(ConvBnAct1d(channels, width, k))
            channels = width
        self.layers = nn.Sequential(*layers)
        self.post_init()

    def forward_features(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.layers(input_values)


class FCN1dForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = FCN1dConfig
    _encoder_class = FCN1dModel
    _lrc_serial_targets = [r"encoder\." + p for p in FCN1dModel._lrc_serial_targets]
