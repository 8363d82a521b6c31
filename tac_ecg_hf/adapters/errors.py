"""The adapter error every loading path raises (PEFT's and ``tac_ecg_hf.lite``'s); a module of its own so that
raising or catching it does not import PEFT."""


class AdapterMismatchError(ValueError):
    """An adapter does not fit the encoder it is loaded on: made for another architecture, width, lead count or
    other weights, or its tensors do not match the modules they should load into."""
