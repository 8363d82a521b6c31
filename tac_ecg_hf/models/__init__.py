"""tac-ecg-hf models: six ECG encoder families, the CETP dual encoder and the ECG feature extractor. Names load
their module on first use; they are registered with the transformers Auto classes (``AutoConfig``, ``AutoModel``,
``AutoModelForSequenceClassification``, ``AutoFeatureExtractor``) by :mod:`tac_ecg_hf.models.registration`, which
``import tac_ecg_hf`` arranges to run as soon as those Auto classes are imported."""

from .._lazy import lazy_exports
from .cetp import __all__ as _cetp_names
from .encoders import __all__ as _encoder_names

_EXPORTS = {
    **dict.fromkeys(_encoder_names, ".encoders"),
    **dict.fromkeys(_cetp_names, ".cetp"),
    "ECGFeatureExtractor": "..data.feature_extraction_ecg",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
