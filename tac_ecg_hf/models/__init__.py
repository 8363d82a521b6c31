"""tac-ecg-hf models: six ECG encoder families and the CETP dual encoder."""

from .cetp import CETPConfig, CETPModel, default_text_model_path
from .encoders import *  # noqa: F401,F403
from .encoders import ENCODER_FAMILIES, ENCODER_PRESETS, create_encoder_config
