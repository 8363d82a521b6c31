"""ResNet1d encoder (ResNet18-style)."""

from torch import nn

from .configuration_resnet1d import ResNet1dConfig
from .modeling_ecg_base import ConvBnAct1d, ECGEncoderModel, ECGForSequenceClassificationBase, conv_bn_values


class ResNet1dBasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        self.conv1 = ConvBnAct1d(in_channels, out_channels, kernel_size, stride=stride)
        self.conv2 = ConvBnAct1d(out_channels, out_channels, kernel_size, act=False, zero_bn=True)
        if stride != 1 or in_channels != out_channels:
            self.downsample = ConvBnAct1d(in_channels, out_channels, 1, stride=stride, act=False)
        else:
            self.downsample = nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv2(self.conv1(x)) + self.downsample(x))


class ResNet1dModel(ECGEncoderModel):
    config_class = ResNet1dConfig
    _no_split_modules = ["ResNet1dBasicBlock"]

    def __init__(self, config: ResNet1dConfig):
        super().__init__(config)
        self.stem = ConvBnAct1d(config.in_channels, config.base_width, config.stem_kernel_size, stride=2)
        self.stem_pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
        stages, channels = [], config.base_width
        for i, (n_blocks, width) in enumerate(zip(config.layers, config.stage_widths)):
            blocks = []
            for j in range(n_blocks):
                blocks.append(ResNet1dBasicBlock(channels, width, config.kernel_size, 2 if (i > 0 and j == 0) else 1))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.post_init()

    @classmethod
    def expected_num_values(cls, config: ResNet1dConfig) -> int:
        total = conv_bn_values(config.in_channels, config.base_width, config.stem_kernel_size)
        channels, k = config.base_width, config.kernel_size
        for i, (n_blocks, width) in enumerate(zip(config.layers, config.stage_widths)):
            for j in range(n_blocks):
                total += conv_bn_values(channels, width, k) + conv_bn_values(width, width, k)
                if (i > 0 and j == 0) or channels != width:
                    total += conv_bn_values(channels, width, 1)
                channels = width
        return total


class ResNet1dForSequenceClassification(ECGForSequenceClassificationBase):
    config_class = ResNet1dConfig
    _encoder_class = ResNet1dModel
