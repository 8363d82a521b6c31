"""FCN1d encoder."""

import torch
from torch import nn

from .configuration_fcn1d import FCN1dConfig
from .modeling_ecg_base import ConvBnAct1d, ECGEncoderModel, ECGForSequenceClassificationBase, conv_bn_values


class FCN1dModel(ECGEncoderModel):
    config_class = FCN1dConfig

    def __init__(self, config: FCN1dConfig):
        super().__init__(config)
        layers, channels = [], config.in_channels
        for width, k in zip(config.widths, config.kernel_sizes):
            layers.append(ConvBnAct1d(channels, width, k))
            channels = width
        self.layers = nn.Sequential(*layers)
        self.post_init()

    @classmethod
    def expected_num_values(cls, config: FCN1dConfig) -> int:
        channels = [config.in_channels] + config.widths
        return sum(conv_bn_values(a, b, k) for a, b, k in zip(channels, config.widths, config.kernel_sizes))

    def forward_features(self, input_values: torch.Tensor, output_hidden_states: bool = False):
        hidden_state, hidden_states = input_values, () if output_hidden_states else None
        for layer in self.layers:
            hidden_state = layer(hidden_state)
            if output_hidden_states:
                hidden_states += (hidden_state,)
        return hidden_state, hidden_states


class FCN1dForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = FCN1dConfig
    _encoder_class = FCN1dModel
