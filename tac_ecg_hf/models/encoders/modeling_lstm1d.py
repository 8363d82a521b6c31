"""LSTM1d encoder."""

import torch
from torch import nn

from .configuration_lstm1d import LSTM1dConfig
from .modeling_ecg_base import ECGEncoderModel, ECGForSequenceClassificationBase


class LSTM1dModel(ECGEncoderModel):
    """A stack of single-layer (bi-)LSTMs, one module per layer (``layers.<i>``), so that per-layer adapters (the
    serial LRC-Adapter after each layer) can be inserted; the computation equals ``nn.LSTM(num_layers=...)``."""

    config_class = LSTM1dConfig

    def __init__(self, config: LSTM1dConfig):
        super().__init__(config)
        sizes = [config.in_channels] + [config.output_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(
            nn.LSTM(size, config.hidden_size, batch_first=True, bidirectional=config.bidirectional) for size in sizes
        )
        self.dropout = nn.Dropout(config.dropout)  # between layers, as nn.LSTM(dropout=...) applies it
        self.post_init()

    @classmethod
    def expected_num_values(cls, config: LSTM1dConfig) -> int:
        h, directions = config.hidden_size, 2 if config.bidirectional else 1
        sizes = [config.in_channels] + [config.output_size] * (config.num_layers - 1)
        return sum(directions * (4 * h * size + 4 * h * h + 8 * h) for size in sizes)

    def forward_features(self, input_values: torch.Tensor, output_hidden_states: bool = False):
        hidden_state = input_values.transpose(1, 2)  # (batch, time, leads)
        hidden_states = () if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            if i > 0:
                hidden_state = self.dropout(hidden_state)
            hidden_state, _ = layer(hidden_state)
            if output_hidden_states:
                hidden_states += (hidden_state.transpose(1, 2),)
        return hidden_state.transpose(1, 2), hidden_states


class LSTM1dForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = LSTM1dConfig
    _encoder_class = LSTM1dModel
