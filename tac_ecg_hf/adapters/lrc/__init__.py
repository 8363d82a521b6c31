"""The LRC-Adapter as a PEFT method: ``get_peft_model``, ``PeftModel.from_pretrained``, ``load_adapter`` and
``set_adapter`` work with it once this module is imported (``import tac_ecg_hf`` does so)."""

from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

from .config import LRCConfig, LRCPeftType
from .constants import TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING
from .layer import LRCHead, LRCLayer, LRCParallel, LRCSerial
from .model import AdapterMismatchError, LRCModel


def register() -> None:
    PEFT_TYPE_TO_CONFIG_MAPPING[LRCPeftType.LRC_ADAPTER] = LRCConfig
    PEFT_TYPE_TO_TUNER_MAPPING[LRCPeftType.LRC_ADAPTER] = LRCModel
    PEFT_TYPE_TO_PREFIX_MAPPING[LRCPeftType.LRC_ADAPTER] = LRCModel.prefix


register()

__all__ = [
    "AdapterMismatchError",
    "LRCConfig",
    "LRCHead",
    "LRCLayer",
    "LRCModel",
    "LRCParallel",
    "LRCPeftType",
    "LRCSerial",
    "TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING",
]
