"""ECGTransformer encoder."""

import math

import torch
from torch import nn

from .configuration_ecg_transformer import ECGTransformerConfig
from .modeling_ecg_base import ConvBnAct1d, ECGEncoderModel, ECGForSequenceClassificationBase, conv_bn_values


def sinusoidal_positions(length: int, dim: int, device, dtype) -> torch.Tensor:
    """Computed on the fly (no buffer), so it works for any record length and survives from_pretrained."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)
    return pe.to(dtype)


class ECGTransformerAttention(nn.Module):
    """Multi-head self-attention over time (``scaled_dot_product_attention``), as transformers' encoders write it."""

    def __init__(self, config: ECGTransformerConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = config.dropout
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        attended = nn.functional.scaled_dot_product_attention(
            query, key, value, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))


class ECGTransformerMLP(nn.Module):
    def __init__(self, config: ECGTransformerConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.act(self.fc1(hidden_states))))


class ECGTransformerLayer(nn.Module):
    """Pre-norm encoder layer: ``x + attention(norm1(x))``, then ``x + mlp(norm2(x))``. Serial LRC-Adapters go after
    ``norm1`` and ``norm2`` (channel-last)."""

    def __init__(self, config: ECGTransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size)
        self.attention = ECGTransformerAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size)
        self.mlp = ECGTransformerMLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.dropout(self.attention(self.norm1(hidden_states)))
        return hidden_states + self.dropout(self.mlp(self.norm2(hidden_states)))


class ECGTransformerModel(ECGEncoderModel):
    config_class = ECGTransformerConfig
    _no_split_modules = ["ECGTransformerLayer"]

    def __init__(self, config: ECGTransformerConfig):
        super().__init__(config)
        stem, channels = [], config.in_channels
        for i, stride in enumerate(config.stem_strides):
            width = config.hidden_size if i == len(config.stem_strides) - 1 else config.hidden_size // 2
            stem.append(ConvBnAct1d(channels, width, 3, stride=stride))
            channels = width
        self.stem = nn.Sequential(*stem)
        self.layers = nn.ModuleList(ECGTransformerLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(config.hidden_size)
        self.post_init()

    @classmethod
    def expected_num_values(cls, config: ECGTransformerConfig) -> int:
        total, channels, hidden = 0, config.in_channels, config.hidden_size
        for i in range(len(config.stem_strides)):
            width = hidden if i == len(config.stem_strides) - 1 else hidden // 2
            total, channels = total + conv_bn_values(channels, width, 3), width
        attention = 4 * (hidden * hidden + hidden)
        mlp = 2 * hidden * config.intermediate_size + config.intermediate_size + hidden
        return total + config.num_hidden_layers * (attention + mlp + 4 * hidden) + 2 * hidden

    def forward_features(self, input_values: torch.Tensor, output_hidden_states: bool = False):
        x = self.stem(input_values).transpose(1, 2)  # (batch, time, hidden)
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)
        hidden_states = (x.transpose(1, 2),) if output_hidden_states else None
        for layer in self.layers:
            x = layer(x)
            if output_hidden_states:
                hidden_states += (x.transpose(1, 2),)
        return self.norm(x).transpose(1, 2), hidden_states


class ECGTransformerForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = ECGTransformerConfig
    _encoder_class = ECGTransformerModel
