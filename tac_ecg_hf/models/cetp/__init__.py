"""CETP dual encoder, registered with AutoConfig/AutoModel on import."""

from transformers import AutoConfig, AutoModel

from .configuration_cetp import CETPConfig
from .loss_cetp import CETPLoss, gather_features
from .modeling_cetp import (
    DEFAULT_TEXT_MODEL_ID,
    CETPModel,
    CETPOutput,
    CETPPreTrainedModel,
    default_text_model_path,
    resolve_text_model,
    weights_fingerprint,
)

AutoConfig.register("cetp", CETPConfig, exist_ok=True)
AutoModel.register(CETPConfig, CETPModel, exist_ok=True)

__all__ = [
    "CETPConfig", "CETPLoss", "CETPModel", "CETPOutput", "CETPPreTrainedModel", "DEFAULT_TEXT_MODEL_ID",
    "default_text_model_path", "gather_features", "resolve_text_model", "weights_fingerprint",
]
