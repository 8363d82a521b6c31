"""LSTM1d encoder (has no convolutions, so LRC-Adapters do not apply; use full fine-tuning or a linear probe)."""

import torch
from torch import nn

from .configuration_lstm1d import LSTM1dConfig
from .modeling_ecg_base import ECGEncoderModel, ECGForSequenceClassificationBase


class LSTM1dModel(ECGEncoderModel):
    config_class = LSTM1dConfig

    def __init__(self, config: LSTM1dConfig):
        super().__init__(config)
        self.lstm = nn.LSTM(
            config.in_channels,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.post_init()

    def forward_features(self, input_values: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(input_values.transpose(1, 2))
        return out.transpose(1, 2)


class LSTM1dForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = LSTM1dConfig
    _encoder_class = LSTM1dModel
