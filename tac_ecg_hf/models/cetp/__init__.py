"""CETP dual encoder, registered with AutoConfig/AutoModel on import."""

from transformers import AutoConfig, AutoModel

from .configuration_cetp import CETPConfig
from .modeling_cetp import CETPModel, CETPOutput, CETPPreTrainedModel, default_text_model_path, symmetric_infonce

AutoConfig.register("cetp", CETPConfig, exist_ok=True)
AutoModel.register(CETPConfig, CETPModel, exist_ok=True)

__all__ = ["CETPConfig", "CETPModel", "CETPOutput", "CETPPreTrainedModel", "default_text_model_path", "symmetric_infonce"]
