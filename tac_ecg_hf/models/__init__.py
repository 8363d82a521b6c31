"""tac-ecg-hf models: six ECG encoder families, the CETP dual encoder and the ECG feature extractor, registered with
the transformers Auto classes (``AutoConfig``, ``AutoModel``, ``AutoModelForSequenceClassification``,
``AutoFeatureExtractor``) on import."""

from transformers import AutoFeatureExtractor

from ..data.feature_extraction_ecg import ECGFeatureExtractor
from .cetp import CETPConfig, CETPModel, default_text_model_path
from .encoders import *  # noqa: F401,F403
from .encoders import ENCODER_FAMILIES, ENCODER_PRESETS, create_encoder_config


def _register_feature_extractor() -> None:
    for config_cls in [family[0] for family in ENCODER_FAMILIES.values()] + [CETPConfig]:
        AutoFeatureExtractor.register(config_cls, ECGFeatureExtractor, exist_ok=True)
    ECGFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")


_register_feature_extractor()
