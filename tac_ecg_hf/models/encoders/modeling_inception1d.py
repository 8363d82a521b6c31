"""Inception1d encoder."""

import torch
from torch import nn

from .configuration_inception1d import Inception1dConfig
from .layers import act_on_new, add_relu, frozen_conv1d
from .modeling_ecg_base import (
    BatchNorm1d,
    ConvBnAct1d,
    ECGEncoderModel,
    ECGForSequenceClassificationBase,
    conv_bn_values,
)


def _pointwise(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for the blocks' 1x1 convs; in inference (gradients off) through ``frozen_conv1d``, which runs
    them as batched matmuls instead of oneDNN's channels-last conv and its copy back (inception1d, 64 windows,
    eager float32, one thread: the ten 128 -> 32 bottleneck and pool-branch convs took 523 ms of a 2.2 s profiled
    forward as convs). An adapter-wrapped conv, or any other module, keeps its own forward."""
    if type(conv) is nn.Conv1d and not torch.is_grad_enabled():
        return frozen_conv1d(x, conv.weight.detach(), None if conv.bias is None else conv.bias.detach(), conv)
    return conv(x)


class Inception1dBlock(nn.Module):
    def __init__(self, in_channels, num_filters, bottleneck_size, kernel_sizes):
        super().__init__()
        self.bottleneck = nn.Conv1d(in_channels, bottleneck_size, 1, bias=False) if in_channels > 1 else nn.Identity()
        branch_in = bottleneck_size if in_channels > 1 else in_channels
        self.convs = nn.ModuleList(
            nn.Conv1d(branch_in, num_filters, k, padding=k // 2, bias=False) for k in kernel_sizes
        )
        self.pool_branch = nn.Sequential(
            nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(in_channels, num_filters, 1, bias=False)
        )
        self.bn = BatchNorm1d(num_filters * (len(kernel_sizes) + 1))
        self.act = nn.ReLU()

    def forward(self, x):
        bottled = _pointwise(self.bottleneck, x)  # an nn.Identity for single-lead input keeps its own forward
        pool, pool_conv = self.pool_branch
        out = torch.cat([conv(bottled) for conv in self.convs] + [_pointwise(pool_conv, pool(x))], dim=1)
        return act_on_new(self.act, self.bn(out))  # the BatchNorm's output is new


class Inception1dModel(ECGEncoderModel):
    config_class = Inception1dConfig

    def __init__(self, config: Inception1dConfig):
        super().__init__(config)
        channels = config.in_channels
        blocks, shortcuts = [], []
        residual_in = channels
        for d in range(config.depth):
            blocks.append(Inception1dBlock(channels, config.num_filters, config.bottleneck_size, config.kernel_sizes))
            channels = config.block_channels
            if (d + 1) % config.residual_every == 0:
                shortcuts.append(ConvBnAct1d(residual_in, channels, 1, act=False))
                residual_in = channels
        self.blocks = nn.ModuleList(blocks)
        self.shortcuts = nn.ModuleList(shortcuts)
        self.act = nn.ReLU()
        self.post_init()

    @classmethod
    def expected_num_values(cls, config: Inception1dConfig) -> int:
        total, channels, residual_in = 0, config.in_channels, config.in_channels
        filters, out = config.num_filters, config.block_channels
        for d in range(config.depth):
            branch_in = config.bottleneck_size if channels > 1 else channels
            total += channels * config.bottleneck_size if channels > 1 else 0  # 1x1 bottleneck
            total += sum(branch_in * filters * k for k in config.kernel_sizes) + channels * filters  # branches, pool
            total += 4 * out + 1  # BatchNorm after the concatenation
            channels = out
            if (d + 1) % config.residual_every == 0:
                total, residual_in = total + conv_bn_values(residual_in, out, 1), out
        return total

    def forward_features(self, input_values: torch.Tensor, output_hidden_states: bool = False):
        x, residual = input_values, input_values
        hidden_states = () if output_hidden_states else None
        for d, block in enumerate(self.blocks):
            x = block(x)
            if (d + 1) % self.config.residual_every == 0:
                x = add_relu(x, self.shortcuts[d // self.config.residual_every](residual), self.act)
                residual = x
            if output_hidden_states:
                hidden_states += (x,)
        return x, hidden_states


class Inception1dForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = Inception1dConfig
    _encoder_class = Inception1dModel
