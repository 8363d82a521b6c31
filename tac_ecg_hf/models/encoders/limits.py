"""The bounds of the encoder configs and the derived ResNet1d stage widths, in plain Python.

The configs (``configuration_*.py``, transformers), the network builders (``layers.py``, torch) and
``tac_ecg_hf.lite`` (which must import neither transformers nor the configs) all use these. This file is copied next
to a saved checkpoint with the modules that import it (``trust_remote_code``), so it imports nothing.
"""

#: Sane maxima of encoder configs. They are far above every published ECG encoder (xresnet1d101: 33 blocks, widths
#: 256) and low enough that a config within them cannot make module construction hang.
MAX_DEPTH = 1_000  # blocks / layers of one network, all stages together
MAX_WIDTH = 8_192  # channels of any layer
MAX_KERNEL_SIZE = 255
MAX_IN_CHANNELS = 64
MAX_NUM_SAMPLES = 10_000_000
MAX_SAMPLING_RATE = 100_000
MAX_NUM_LABELS = 10_000
MAX_ATTENTION_HEADS = 1_024
MAX_STRIDE = 16


def resnet1d_stage_widths(base_width: int, num_stages: int) -> list[int]:
    """Channels of each ResNet1d stage: ``base_width * 2**stage``."""
    return [base_width * 2**i for i in range(num_stages)]
