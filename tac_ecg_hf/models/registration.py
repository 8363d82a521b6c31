"""Registers the six encoder families, CETP and the ECG feature extractor with the transformers Auto classes
(``AutoConfig``, ``AutoModel``, ``AutoModelForSequenceClassification``, ``AutoFeatureExtractor``). Imported by the
hooks that ``import tac_ecg_hf`` installs, as soon as transformers' ``modeling_auto`` or ``feature_extraction_auto``
is imported; idempotent."""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForSequenceClassification

from ..data.feature_extraction_ecg import ECGFeatureExtractor
from . import configs  # noqa: F401  (AutoConfig registrations)
from .cetp.configuration_cetp import CETPConfig
from .cetp.modeling_cetp import CETPModel
from .encoders.families import ENCODER_FAMILIES


def register() -> None:
    for model_type, (config_cls, model_cls, cls_cls) in ENCODER_FAMILIES.items():
        AutoConfig.register(model_type, config_cls, exist_ok=True)
        AutoModel.register(config_cls, model_cls, exist_ok=True)
        AutoModelForSequenceClassification.register(config_cls, cls_cls, exist_ok=True)
        config_cls.register_for_auto_class()
        model_cls.register_for_auto_class("AutoModel")
        cls_cls.register_for_auto_class("AutoModelForSequenceClassification")
    AutoConfig.register("cetp", CETPConfig, exist_ok=True)
    AutoModel.register(CETPConfig, CETPModel, exist_ok=True)
    for config_cls in [family[0] for family in ENCODER_FAMILIES.values()] + [CETPConfig]:
        AutoFeatureExtractor.register(config_cls, ECGFeatureExtractor, exist_ok=True)
    ECGFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")


register()
