"""Default LRC-Adapter insertion points per encoder family, like PEFT's ``TRANSFORMERS_MODELS_TO_*_MAPPING``.

Each value is a regular expression matched in full against module names (PEFT's rule for a ``str``
``target_modules``). The optional ``encoder.`` prefix makes the same pattern work on the bare ``*Model`` and on
``*ForSequenceClassification`` (which holds the encoder as ``encoder``).

* ``serial`` (TAC-ECG): the normalisation after each feature-extracting layer, whose output the bottleneck
  ``y + s * up(ReLU(down(y)))`` refines: the BatchNorm after the kernel-``k`` conv of each conv block, the LayerNorms
  in front of attention and MLP of each transformer layer (channel-last), each LSTM layer's output.
* ``parallel`` (mergeable): the ``Conv1d`` layers that the low-rank branch sits beside (only kernels > 1 unless
  ``LRCConfig.kernel_sizes`` says otherwise). A family without convolutions (``lstm1d``) has none.
"""

_ENCODER = r"(?:encoder\.)?"

TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING: dict[str, dict[str, str]] = {
    "xresnet1d": {
        # the stem BatchNorms and the one after each block's kernel-k conv (convpath.1 in bottleneck and basic blocks)
        "serial": _ENCODER + r"(?:stem\.\d+|stages\.\d+\.\d+\.convpath\.1)\.bn",
        "parallel": _ENCODER + r"(?:stem\.\d+|stages\.\d+\.\d+\.convpath\.\d+)\.conv",
    },
    "resnet1d": {
        "serial": _ENCODER + r"stages\.\d+\.\d+\.conv[12]\.bn",
        "parallel": _ENCODER + r"(?:stem|stages\.\d+\.\d+\.conv[12])\.conv",
    },
    "inception1d": {
        # the BatchNorm after each block's concatenated multi-kernel branches
        "serial": _ENCODER + r"blocks\.\d+\.bn",
        "parallel": _ENCODER + r"blocks\.\d+\.convs\.\d+",
    },
    "fcn1d": {
        "serial": _ENCODER + r"layers\.\d+\.bn",
        "parallel": _ENCODER + r"layers\.\d+\.conv",
    },
    "lstm1d": {
        # the output of every recurrent layer (channel-last); the (h, c) state passes through unchanged
        "serial": _ENCODER + r"layers\.\d+",
    },
    "ecg_transformer": {
        "serial": _ENCODER + r"(?:stem\.\d+\.bn|layers\.\d+\.norm[12]|norm)",
        "parallel": _ENCODER + r"stem\.\d+\.conv",
    },
}
