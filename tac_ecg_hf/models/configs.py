"""The configurations of the six encoder families and of CETP, registered with ``AutoConfig`` on import.

Kept apart from the modelling code: ``tac_ecg_hf`` registers them as soon as transformers' ``configuration_auto``
is imported (``AutoConfig.from_pretrained("tac-ecg/...")`` then works), which must not import the models.
"""

from transformers import AutoConfig

from .cetp.configuration_cetp import CETPConfig
from .encoders.configuration_ecg_transformer import ECGTransformerConfig
from .encoders.configuration_fcn1d import FCN1dConfig
from .encoders.configuration_inception1d import Inception1dConfig
from .encoders.configuration_lstm1d import LSTM1dConfig
from .encoders.configuration_resnet1d import ResNet1dConfig
from .encoders.configuration_xresnet1d import XResNet1dConfig

CONFIGS = {
    "xresnet1d": XResNet1dConfig,
    "resnet1d": ResNet1dConfig,
    "inception1d": Inception1dConfig,
    "fcn1d": FCN1dConfig,
    "lstm1d": LSTM1dConfig,
    "ecg_transformer": ECGTransformerConfig,
    "cetp": CETPConfig,
}

for _model_type, _config_class in CONFIGS.items():
    AutoConfig.register(_model_type, _config_class, exist_ok=True)
    if _model_type != "cetp":
        _config_class.register_for_auto_class()  # saved configs name their class in auto_map
