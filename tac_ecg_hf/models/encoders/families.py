"""The six encoder families (config, bare encoder and classifier classes by ``model_type``) and the paper's presets."""

from .configuration_ecg_base import ECGEncoderConfig
from .configuration_ecg_transformer import ECGTransformerConfig
from .configuration_fcn1d import FCN1dConfig
from .configuration_inception1d import Inception1dConfig
from .configuration_lstm1d import LSTM1dConfig
from .configuration_resnet1d import ResNet1dConfig
from .configuration_xresnet1d import XResNet1dConfig
from .modeling_ecg_transformer import ECGTransformerForSequenceClassification, ECGTransformerModel
from .modeling_fcn1d import FCN1dForSequenceClassification, FCN1dModel
from .modeling_inception1d import Inception1dForSequenceClassification, Inception1dModel
from .modeling_lstm1d import LSTM1dForSequenceClassification, LSTM1dModel
from .modeling_resnet1d import ResNet1dForSequenceClassification, ResNet1dModel
from .modeling_xresnet1d import XResNet1dForSequenceClassification, XResNet1dModel

#: model_type -> (config class, encoder class, classification class)
ENCODER_FAMILIES = {
    "xresnet1d": (XResNet1dConfig, XResNet1dModel, XResNet1dForSequenceClassification),
    "resnet1d": (ResNet1dConfig, ResNet1dModel, ResNet1dForSequenceClassification),
    "inception1d": (Inception1dConfig, Inception1dModel, Inception1dForSequenceClassification),
    "fcn1d": (FCN1dConfig, FCN1dModel, FCN1dForSequenceClassification),
    "lstm1d": (LSTM1dConfig, LSTM1dModel, LSTM1dForSequenceClassification),
    "ecg_transformer": (ECGTransformerConfig, ECGTransformerModel, ECGTransformerForSequenceClassification),
}

#: Named presets of the paper's encoders (``create_encoder_config("xresnet1d101")``).
ENCODER_PRESETS = {
    "xresnet1d101": ("xresnet1d", {"layers": [3, 4, 23, 3], "block_widths": [64, 64, 64, 64], "expansion": 4}),
    "xresnet1d50": ("xresnet1d", {"layers": [3, 4, 6, 3], "block_widths": [64, 64, 64, 64], "expansion": 4}),
    "resnet1d18": ("resnet1d", {"layers": [2, 2, 2, 2], "base_width": 64}),
    "resnet1d18-small": ("resnet1d", {"layers": [2, 2, 2, 2], "base_width": 32}),
    "inception1d": ("inception1d", {}),
    "fcn": ("fcn1d", {}),
    "lstm": ("lstm1d", {"bidirectional": False}),
    "bilstm": ("lstm1d", {"bidirectional": True}),
    "transformer": ("ecg_transformer", {}),
}


def create_encoder_config(name: str, **overrides) -> ECGEncoderConfig:
    """A config from a preset name (``xresnet1d101``, ``bilstm``...) or a model_type, with overrides."""
    if name in ENCODER_PRESETS:
        model_type, preset = ENCODER_PRESETS[name]
        return ENCODER_FAMILIES[model_type][0](**{**preset, **overrides})
    if name in ENCODER_FAMILIES:
        return ENCODER_FAMILIES[name][0](**overrides)
    raise KeyError(
        f"Unknown encoder {name!r}. Presets: {', '.join(ENCODER_PRESETS)}; model types: {', '.join(ENCODER_FAMILIES)}."
    )
