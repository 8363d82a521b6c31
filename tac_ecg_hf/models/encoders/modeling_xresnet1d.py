"""XResNet1d encoder (TAC-ECG's xresnet1d101)."""

from .configuration_xresnet1d import XResNet1dConfig
from .layers import XResNet1dBlock, build_xresnet1d, conv_bn_values
from .modeling_ecg_base import ECGEncoderModel, ECGForSequenceClassificationBase

__all__ = ["XResNet1dBlock", "XResNet1dModel", "XResNet1dForSequenceClassification"]


class XResNet1dModel(ECGEncoderModel):
    config_class = XResNet1dConfig
    _no_split_modules = ["XResNet1dBlock"]

    def __init__(self, config: XResNet1dConfig):
        super().__init__(config)
        build_xresnet1d(self, config)
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
