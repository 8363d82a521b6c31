"""ECGTransformer encoder."""

import math

import torch
from torch import nn

from .configuration_ecg_transformer import ECGTransformerConfig
from .modeling_ecg_base import ConvBnAct1d, ECGEncoderModel, ECGForSequenceClassificationBase


def sinusoidal_positions(length: int, dim: int, device, dtype) -> torch.Tensor:
    """Computed on the fly (no buffer), so it works for any record length and survives from_pretrained."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)
    return pe.to(dtype)


class ECGTransformerModel(ECGEncoderModel):
    config_class = ECGTransformerConfig
    _lrc_serial_targets = [r"stem\.\d+\.bn"]

    def __init__(self, config: ECGTransformerConfig):
        super().__init__(config)
        stem, channels = [], config.in_channels
        for i, stride in enumerate(config.stem_strides):
            width = config.hidden_size if i == len(config.stem_strides) - 1 else config.hidden_size // 2
            stem.append(ConvBnAct1d(channels, width, 3, stride=stride))
            channels = width
        self.stem = nn.Sequential(*stem)
        layer = nn.TransformerEncoderLayer(
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.num_hidden_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.hidden_size)
        self.post_init()

    def forward_features(self, input_values: torch.Tensor) -> torch.Tensor:
        x = self.stem(input_values).transpose(1, 2)
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)
        x = self.norm(self.layers(x))
        return x.transpose(1, 2)


class ECGTransformerForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = ECGTransformerConfig
    _encoder_class = ECGTransformerModel
    _lrc_serial_targets = [r"encoder\." + p for p in ECGTransformerModel._lrc_serial_targets]
