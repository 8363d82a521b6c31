"""Parameter-efficient fine-tuning on a frozen ECG encoder: the LRC-Adapter PEFT method (``lrc``), frozen BatchNorm
statistics (``batchnorm``) and the encoder fingerprint stored with each adapter (``fingerprint``)."""
