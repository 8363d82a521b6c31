"""The six ECG encoder families: configs, bare encoders (``AutoModel``) and classifiers
(``AutoModelForSequenceClassification``). Names load their module on first use; the Auto-class registrations are in
``tac_ecg_hf.models.registration`` (run when transformers' Auto classes are imported, see ``tac_ecg_hf``)."""

from ..._lazy import lazy_exports

_EXPORTS = {
    "STANDARD_LEADS": ".configuration_ecg_base",
    "ConfigFieldError": ".configuration_ecg_base",
    "ECGEncoderConfig": ".configuration_ecg_base",
    "ECGTransformerConfig": ".configuration_ecg_transformer",
    "FCN1dConfig": ".configuration_fcn1d",
    "Inception1dConfig": ".configuration_inception1d",
    "LSTM1dConfig": ".configuration_lstm1d",
    "ResNet1dConfig": ".configuration_resnet1d",
    "XResNet1dConfig": ".configuration_xresnet1d",
    "ECGEncoderModel": ".modeling_ecg_base",
    "ECGForSequenceClassificationBase": ".modeling_ecg_base",
    "ECGPreTrainedModel": ".modeling_ecg_base",
    "BatchNorm1d": ".modeling_ecg_base",
    "ECGTransformerForSequenceClassification": ".modeling_ecg_transformer",
    "ECGTransformerModel": ".modeling_ecg_transformer",
    "FCN1dForSequenceClassification": ".modeling_fcn1d",
    "FCN1dModel": ".modeling_fcn1d",
    "Inception1dForSequenceClassification": ".modeling_inception1d",
    "Inception1dModel": ".modeling_inception1d",
    "LSTM1dForSequenceClassification": ".modeling_lstm1d",
    "LSTM1dModel": ".modeling_lstm1d",
    "ResNet1dForSequenceClassification": ".modeling_resnet1d",
    "ResNet1dModel": ".modeling_resnet1d",
    "XResNet1dForSequenceClassification": ".modeling_xresnet1d",
    "XResNet1dModel": ".modeling_xresnet1d",
    "ENCODER_FAMILIES": ".families",
    "ENCODER_PRESETS": ".families",
    "create_encoder_config": ".families",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [name for name in _EXPORTS if name != "BatchNorm1d"]
