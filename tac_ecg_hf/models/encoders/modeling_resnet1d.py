"""ResNet1d encoder (ResNet18-style)."""

from .configuration_resnet1d import ResNet1dConfig
from .layers import ResNet1dBasicBlock, build_resnet1d, conv_bn_values
from .modeling_ecg_base import ECGEncoderModel, ECGForSequenceClassificationBase

__all__ = ["ResNet1dBasicBlock", "ResNet1dModel", "ResNet1dForSequenceClassification"]


class ResNet1dModel(ECGEncoderModel):
    config_class = ResNet1dConfig
    _no_split_modules = ["ResNet1dBasicBlock"]

    def __init__(self, config: ResNet1dConfig):
        super().__init__(config)
        build_resnet1d(self, config)
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
