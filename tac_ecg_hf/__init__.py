"""tac-ecg-hf: TAC-ECG (contrastive ECG-text pre-training + Low-Rank Convolutional Adapters) for the
Hugging Face stack. Importing the package registers the encoders and CETP with the transformers Auto classes
and the LRC-Adapter with PEFT."""

__version__ = "0.1.0"

from .adapters.lrc import AdapterMismatchError, LRCConfig, LRCModel
from .models import *  # noqa: F401,F403
from .models import CETPConfig, CETPModel, ENCODER_FAMILIES, ENCODER_PRESETS, create_encoder_config
from .tasks import STANDARD_LEADS, TASKS, TaskSpec, get_task

from .pipelines import register_pipelines as _register_pipelines

_register_pipelines()  # pipeline("ecg-classification" | "zero-shot-ecg-classification", ...) after import tac_ecg_hf
