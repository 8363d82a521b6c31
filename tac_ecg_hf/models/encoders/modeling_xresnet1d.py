"""XResNet1d encoder (TAC-ECG's xresnet1d101)."""

from torch import nn

from .configuration_xresnet1d import XResNet1dConfig
from .modeling_ecg_base import ConvBnAct1d, ECGEncoderModel, ECGForSequenceClassificationBase, conv_bn_values


class XResNet1dBlock(nn.Module):
    """Bottleneck (expansion > 1) or basic residual block with an average-pool shortcut when strided."""

    def __init__(self, in_channels, width, expansion, kernel_size, stride):
        super().__init__()
        out_channels = width * expansion
        if expansion == 1:
            self.convpath = nn.Sequential(
                ConvBnAct1d(in_channels, width, kernel_size, stride=stride),
                ConvBnAct1d(width, out_channels, kernel_size, act=False, zero_bn=True),
            )
        else:
            self.convpath = nn.Sequential(
                ConvBnAct1d(in_channels, width, 1),
                ConvBnAct1d(width, width, kernel_size, stride=stride),
                ConvBnAct1d(width, out_channels, 1, act=False, zero_bn=True),
            )
        shortcut = []
        if stride != 1:
            shortcut.append(nn.AvgPool1d(stride, ceil_mode=True))
        if in_channels != out_channels:
            shortcut.append(ConvBnAct1d(in_channels, out_channels, 1, act=False))
        self.idpath = nn.Sequential(*shortcut)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.convpath(x) + self.idpath(x))


class XResNet1dModel(ECGEncoderModel):
    config_class = XResNet1dConfig
    _no_split_modules = ["XResNet1dBlock"]

    def __init__(self, config: XResNet1dConfig):
        super().__init__(config)
        stem, channels = [], config.in_channels
        for i, width in enumerate(config.stem_widths):
            stem.append(ConvBnAct1d(channels, width, config.kernel_size, stride=2 if i == 0 else 1))
            channels = width
        self.stem = nn.Sequential(*stem)
        self.stem_pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
        stages = []
        for i, (n_blocks, width) in enumerate(zip(config.layers, config.block_widths)):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(XResNet1dBlock(channels, width, config.expansion, config.kernel_size, stride))
                channels = width * config.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.post_init()

    @classmethod
    def expected_num_values(cls, config: XResNet1dConfig) -> int:
        total, channels = 0, config.in_channels
        for width in config.stem_widths:
            total, channels = total + conv_bn_values(channels, width, config.kernel_size), width
        k, e = config.kernel_size, config.expansion
        for n_blocks, width in zip(config.layers, config.block_widths):
            for _ in range(n_blocks):
                out = width * e
                if e == 1:
                    total += conv_bn_values(channels, width, k) + conv_bn_values(width, out, k)
                else:
                    total += conv_bn_values(channels, width, 1) + conv_bn_values(width, width, k)
                    total += conv_bn_values(width, out, 1)
                total += conv_bn_values(channels, out, 1) if channels != out else 0
                channels = out
        return total


class XResNet1dForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = XResNet1dConfig
    _encoder_class = XResNet1dModel
