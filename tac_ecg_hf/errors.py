"""The package's exception types, and which of them mean "bad input".

Every refusal of bad input raises one of the package's own types, each a subclass of the builtin a caller would
catch (``ValueError``, ``OSError``, ``RuntimeError``), with a one-line message saying what is wrong and how to fix it:

========================================  ==================================================================
type                                      raised for
========================================  ==================================================================
:class:`InvalidArgumentError`             an argument outside what a function or command accepts
                                          (a threshold outside [0, 1], a task the model has no adapter for);
                                          :class:`UnknownTaskError` a task name that does not exist
``data.errors.ECGInputError``             an unusable record or signal; ``ECGFileError`` a corrupt file,
                                          ``ECGFileNotFoundError`` a missing one
``data.errors.ECGConfigError``            invalid feature-extractor settings (``preprocessor_config.json``)
``models...ConfigFieldError``             an encoder ``config.json`` with unknown, missing or out-of-range fields
``safety.UnsafeCheckpointError``          a pickle checkpoint not allowed, or refused by the weights-only unpickler
``safety.CheckpointFileError``            a missing, truncated or malformed weights or config file
``safety.CheckpointMismatchError``        encoder weights that do not fit their config
``safety.AdapterConfigError``             an ``adapter_config.json`` that is not a valid adapter config
``adapters.lrc.AdapterMismatchError``     an adapter that does not fit the encoder it is loaded on
``hub.HubAccessError``                    a Hub download or upload that failed
========================================  ==================================================================

:func:`bad_input_error_types` returns them; the CLI exits with status 2 and the one-line message for these (and for
the operating system's ``OSError``: a missing file, a permission, a full disk) and with status 1, "internal error",
for anything else, which is a bug.
"""

from __future__ import annotations

from .tasks import UnknownTaskError  # a KeyError and a ValueError; tasks.py is loaded on its own by the metrics

__all__ = ["InvalidArgumentError", "UnknownTaskError", "bad_input_error_types"]


class InvalidArgumentError(ValueError):
    """An argument of a public function or of a ``tac-ecg`` command is outside what it accepts."""




def bad_input_error_types() -> tuple[type[BaseException], ...]:
    """The package's exception types that mean bad input (see the module docstring). Imported lazily: the CLI calls
    this on its error path only, and ``tac-ecg --help`` stays fast."""
    from .adapters.errors import AdapterMismatchError
    from .data.errors import ECGConfigError, ECGInputError
    from .hub.errors import HubAccessError
    from .models.encoders.configuration_ecg_base import ConfigFieldError
    from .safety import AdapterConfigError, CheckpointFileError, CheckpointMismatchError, UnsafeCheckpointError

    return (
        InvalidArgumentError, UnknownTaskError, ECGInputError, ECGConfigError, ConfigFieldError, UnsafeCheckpointError,
        CheckpointFileError, CheckpointMismatchError, AdapterConfigError, AdapterMismatchError, HubAccessError,
    )
