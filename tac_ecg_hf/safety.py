"""Safe, verified loading and crash-safe saving of encoders and task adapters.

* **Safetensors through the libraries.** :func:`load_encoder` passes ``use_safetensors=True`` to transformers'
  ``from_pretrained`` and :func:`load_task_adapter` loads ``adapter_model.safetensors`` through PEFT. A pickle-only
  checkpoint (``pytorch_model.bin``, ``adapter_model.bin``) is refused with :class:`UnsafeCheckpointError` unless the
  caller passes ``allow_pickle=True``; it is then read with torch's weights-only unpickler
  (``torch.load(weights_only=True)``, as transformers and PEFT do), and a file that unpickler refuses is refused too.
* **Verified weights.** Every tensor of the file must land in the model, every module that needs weights from it
  must get them, and every shape must agree; otherwise :class:`CheckpointMismatchError` (encoders) or
  :class:`~tac_ecg_hf.adapters.lrc.AdapterMismatchError` (adapters) says which tensors, in one line. An adapter
  also names the encoder it was trained on (``encoder_fingerprint`` in its ``adapter_config.json``, see
  :mod:`tac_ecg_hf.adapters.fingerprint`); loading it on other encoder weights is refused. Adapters saved before the
  fingerprint existed are checked by their declared ``encoder_signature`` and by the shapes of their tensors.
* **Atomic saves.** :func:`atomic_save_pretrained` writes ``save_pretrained`` output to a temporary sibling folder
  and moves it into place with ``os.replace``, so a run killed mid-save leaves the previous checkpoint intact.

Every error here is one line saying what is wrong and how to fix it, of a type the CLI maps to exit status 2.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import pickle
import re
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

import torch

from .adapters.errors import AdapterMismatchError

__all__ = [
    "ADAPTER_PICKLE_FILES",
    "ADAPTER_SAFE_FILES",
    "PICKLE_WEIGHT_FILES",
    "SAFE_WEIGHT_FILES",
    "AdapterConfigError",
    "AdapterMismatchError",
    "CheckpointFileError",
    "CheckpointMismatchError",
    "UnsafeCheckpointError",
    "atomic_save_pretrained",
    "check_adapter_files",
    "check_model_files",
    "load_encoder",
    "load_peft_adapter",
    "load_task_adapter",
    "pickle_only_checkpoint",
    "replace_dir",
]

#: weight files that are Python pickles (``torch.load`` can run code from them) / safetensors files
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
SAFE_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
ADAPTER_SAFE_FILES = ("adapter_model.safetensors",)
ADAPTER_PICKLE_FILES = ("adapter_model.bin",)
ADAPTER_CONFIG_FILE = "adapter_config.json"
#: weight files superseded by a new save (not carried over from the previous version of a target folder)
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.pt", "*.pth")
_HUB_KWARGS = ("revision", "subfolder", "token", "cache_dir", "local_files_only", "force_download")


class UnsafeCheckpointError(OSError):
    """A checkpoint holds only pickle weights (``*.bin``), which can run arbitrary code when loaded, and the caller
    did not allow them (``allow_pickle=True``), or torch's weights-only unpickler refused the file."""


class CheckpointFileError(OSError):
    """A weights or config file is missing, truncated or not what its name says."""


class CheckpointMismatchError(ValueError):
    """The tensors of an encoder checkpoint do not fit the model: unexpected, missing or differently shaped."""


class AdapterConfigError(ValueError):
    """An ``adapter_config.json`` is not a valid adapter configuration."""


def _one_line(err: BaseException | str) -> str:
    return " ".join(str(err).split())


def _examples(keys, limit: int = 3) -> str:
    keys = sorted(_display(k) for k in keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# ----------------------------------------------------------------------------------------------------------------
# pickle refusal


def pickle_only_checkpoint(folder, safe_files=SAFE_WEIGHT_FILES, pickle_files=PICKLE_WEIGHT_FILES) -> list:
    """The pickle weight files of a local ``folder`` that has no safetensors weights (empty list otherwise, and for
    anything that is not a local directory, such as a Hub id)."""
    try:
        if folder is None or not os.path.isdir(folder):
            return []
    except (TypeError, ValueError):
        return []
    if any(os.path.isfile(os.path.join(folder, name)) for name in safe_files):
        return []
    return [name for name in pickle_files if os.path.isfile(os.path.join(folder, name))]


def check_adapter_files(path: str | os.PathLike, allow_pickle: bool = False) -> None:
    """Refuse a local adapter folder that holds only a pickle ``adapter_model.bin`` (no safetensors), unless
    ``allow_pickle=True``. Hub ids and folders with safetensors pass."""
    files = pickle_only_checkpoint(path, ADAPTER_SAFE_FILES, ADAPTER_PICKLE_FILES)
    if files and not allow_pickle:
        raise UnsafeCheckpointError(
            f"adapter {os.fspath(path)} holds only a pickle checkpoint ({', '.join(files)}); tac-ecg-hf loads "
            "safetensors adapters only by default, because unpickling a file can run arbitrary code. Convert it "
            "(load it once where you trust it and save it with PeftModel.save_pretrained, which writes "
            "adapter_model.safetensors), or pass allow_pickle=True explicitly if you trust the file."
        )


def check_model_files(path: str | os.PathLike, allow_pickle: bool = False) -> bool | None:
    """Refuse a local model folder with only ``pytorch_model.bin`` unless ``allow_pickle``; returns the
    ``use_safetensors`` value to pass to ``from_pretrained`` (``False`` for an allowed pickle-only folder, else
    None)."""
    files = pickle_only_checkpoint(path)
    if not files:
        return None
    if not allow_pickle:
        raise UnsafeCheckpointError(
            f"{os.fspath(path)} holds only a pickle checkpoint ({', '.join(files)}); tac-ecg-hf loads safetensors "
            "only by default, because unpickling a file can run arbitrary code. Convert it to safetensors (load it "
            "once where you trust it and call save_pretrained), or pass allow_pickle=True explicitly if you trust it."
        )
    return False


def _unpickler_reason(err: BaseException) -> str:
    """The reason torch's weights-only unpickler gives (``Unsupported global: GLOBAL os.system ...``), without the
    paragraph of advice and the terminal colour codes around it."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    found = re.search(r"WeightsUnpickler error: (.*?)(?:\.\s|\.?$)", text, re.S)
    return _one_line(found.group(1) if found else text)[:200]


def _weights_only_load(path: Path) -> dict:
    """``torch.load(weights_only=True)``, the unpickler transformers and PEFT use, with a one-line refusal."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        raise UnsafeCheckpointError(
            f"{path} was refused by torch's weights-only unpickler even with allow_pickle=True "
            f"({_unpickler_reason(err)}); it holds more than tensors or is corrupt. Convert it to safetensors where "
            "you trust it, or do not load it."
        ) from err


# ----------------------------------------------------------------------------------------------------------------
# file inspection


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a weights file, read from the safetensors header (no data is loaded), or from a
    weights-only unpickle of a pickle file."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(path, framework="pt") as fh:
                return {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}
        except (SafetensorError, OSError) as err:
            raise CheckpointFileError(
                f"{path} is not a readable safetensors file ({_one_line(err)}); it is truncated or corrupt: "
                "download or save it again."
            ) from err
    state = _weights_only_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointFileError(f"{path} does not hold a dict of tensors (got {type(state).__name__}).")
    return {key: tuple(value.shape) for key, value in state.items()}


def _display(key: str) -> str:
    """A tensor name as the user sees the module: without PEFT's ``base_model.model.`` prefix."""
    return key.removeprefix("base_model.model.")


def _describe_mismatch(expected: dict, found: dict, what: str) -> str:
    """'' if the two name -> shape maps agree, else one clause per kind of difference."""
    unexpected = set(found) - set(expected)
    missing = set(expected) - set(found)
    shapes = {k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k])}
    parts = []
    if unexpected:
        parts.append(f"{len(unexpected)} tensor(s) of the file have no place in the model ({_examples(unexpected)})")
    if missing:
        parts.append(f"{len(missing)} {what} tensor(s) get no value from the file ({_examples(missing)})")
    if shapes:
        key = sorted(shapes)[0]
        parts.append(
            f"{len(shapes)} shape(s) differ ({_display(key)}: file {tuple(found[key])} vs model {tuple(expected[key])}"
            + (f" and {len(shapes) - 1} more" if len(shapes) > 1 else "")
            + ")"
        )
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# encoders


def _check_model_config(folder) -> None:
    """The ``config.json`` of a local model folder must be a JSON object naming a registered ``model_type`` (otherwise
    transformers falls back to the file's ``auto_map`` and asks for ``trust_remote_code``, or fails on the JSON)."""
    from transformers import CONFIG_MAPPING

    try:
        path = Path(folder) / "config.json"
        if not path.is_file():
            return  # a Hub id, or a folder without a config: transformers says what is missing
    except (TypeError, ValueError):
        return
    config = read_json_object(path, what="model settings")
    for key, kind, nullable in (("auto_map", dict, False), ("architectures", list, True)):
        if key in config and not isinstance(config[key], kind) and not (nullable and config[key] is None):
            raise CheckpointFileError(
                f"{path}: {key} must be a JSON {'object' if kind is dict else 'list'}, got "
                f"{json.dumps(config[key])[:60]}; the file is corrupt: save the model again."
            )
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        from .models.encoders import ENCODER_FAMILIES

        known = ", ".join([*sorted(ENCODER_FAMILIES), "cetp"])
        raise CheckpointFileError(
            f"{path}: model_type {model_type!r} is not a registered model type (tac-ecg-hf encoders: {known}); the "
            "file is corrupt or belongs to another library: save the model again."
        )


def load_encoder(path_or_id: str | os.PathLike, cls=None, allow_pickle: bool = False, **kwargs):
    """``cls.from_pretrained(path_or_id, **kwargs)`` (default ``AutoModelForSequenceClassification``) with
    safetensors only (unless ``allow_pickle=True``), float32 weights (unless ``dtype`` is given) and verified weights:
    every tensor of the checkpoint must load into the model and every model tensor must come from it, with one
    exception, the classification head (``head.*``), which a classifier creates when loading a bare encoder and a bare
    encoder drops when loading a classifier. Raises :class:`UnsafeCheckpointError`, :class:`CheckpointFileError` or
    :class:`CheckpointMismatchError`, one line each."""
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification

    cls = cls or AutoModelForSequenceClassification
    folder = path_or_id
    if kwargs.get("subfolder") and os.path.isdir(path_or_id):
        folder = os.path.join(path_or_id, kwargs["subfolder"])
    _check_model_config(folder)
    use_safetensors = check_model_files(folder, allow_pickle=allow_pickle)
    kwargs.setdefault("dtype", torch.float32)
    kwargs["use_safetensors"] = True if use_safetensors is None and not allow_pickle else use_safetensors
    try:
        model, info = cls.from_pretrained(path_or_id, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
    except SafetensorError as err:
        raise CheckpointFileError(
            f"the weights of {path_or_id} are not a readable safetensors file ({_one_line(err)}); it is truncated or "
            "corrupt: download or save it again."
        ) from err
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"the pickle weights of {path_or_id} were refused by torch's weights-only unpickler "
            f"({_unpickler_reason(err)}); convert them to safetensors where you trust them, or do not load them."
        ) from err
    except OSError as err:
        if "safetensors" in str(err) and not os.path.isdir(folder) and not allow_pickle:
            raise UnsafeCheckpointError(
                f"{_one_line(err)} tac-ecg-hf loads safetensors only by default; if {path_or_id} has only a pickle "
                "checkpoint (pytorch_model.bin), convert it to safetensors, or pass allow_pickle=True if you trust it."
            ) from err
        raise
    has_head = hasattr(model, "head")
    missing = {k for k in info["missing_keys"] if not (has_head and k.startswith("head."))}
    unexpected = {k for k in info["unexpected_keys"] if not (not has_head and k.startswith("head."))}
    mismatched = {key: (found, expected) for key, found, expected in info["mismatched_keys"]}
    problems = _describe_mismatch(
        {**{k: () for k in missing}, **{k: v[1] for k, v in mismatched.items()}},
        {**{k: () for k in unexpected}, **{k: v[0] for k, v in mismatched.items()}},
        "model",
    )
    if problems:
        raise CheckpointMismatchError(
            f"the weights of {path_or_id} do not fit {type(model).__name__} built from its config.json: {problems}. "
            "The config and the weights do not belong together; save them again with save_pretrained."
        )
    return model


# ----------------------------------------------------------------------------------------------------------------
# adapters


def _adapter_folder(path, kwargs: dict) -> Path:
    """A local folder with the adapter's files: ``path`` itself (joined with ``subfolder``), or the files of a Hub
    repository fetched with ``huggingface_hub.snapshot_download`` (cached; works offline from a filled cache)."""
    subfolder = kwargs.pop("subfolder", None) or ""
    local = Path(path) / subfolder
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download

    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    patterns = [prefix + name for name in (ADAPTER_CONFIG_FILE, *ADAPTER_SAFE_FILES, *ADAPTER_PICKLE_FILES)]
    hub_kwargs = {k: kwargs.pop(k) for k in _HUB_KWARGS if k in kwargs}
    return Path(snapshot_download(os.fspath(path), allow_patterns=patterns, **hub_kwargs)) / subfolder


#: the largest config file read (a config.json is a few KB; anything this big is not one)
MAX_CONFIG_BYTES = 16 << 20


def read_json_object(path: str | os.PathLike, error: type[Exception] = None, what: str = "settings") -> dict:
    """The JSON object in a config file (``config.json``, ``adapter_config.json``, ``preprocessor_config.json``),
    read before transformers or PEFT parse it, so that a file that is not a JSON object (truncated, binary, a list) is
    refused in one line with ``error`` (default :class:`CheckpointFileError`) instead of failing deep inside them."""
    error = error or CheckpointFileError
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise error(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MiB; it is not a config file.")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise error(f"{path} is not valid JSON ({_one_line(err)[:200]}); save it again.") from err
    if not isinstance(data, dict):
        raise error(f"{path} holds a JSON {type(data).__name__}, not an object of {what}; save it again.")
    return data


def _read_adapter_config(folder: Path):
    from peft import PeftConfig

    path = folder / ADAPTER_CONFIG_FILE
    if not path.is_file():
        raise CheckpointFileError(
            f"{folder} has no {ADAPTER_CONFIG_FILE}; it is not a saved adapter (PeftModel.save_pretrained writes one)."
        )
    data = read_json_object(path, AdapterConfigError, "adapter settings")
    if not isinstance(data.get("peft_type"), str):
        raise AdapterConfigError(f"{path} has no peft_type (such as 'LRC_ADAPTER'); it is not a PEFT adapter config.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PEFT warns about unknown keys; the values are checked below
            return PeftConfig.from_pretrained(os.fspath(folder))
    except (ValueError, TypeError, KeyError) as err:
        raise AdapterConfigError(f"{path} is not a valid adapter config: {_one_line(err)}") from err


def _adapter_weights_file(folder: Path, allow_pickle: bool) -> Path:
    for name in ADAPTER_SAFE_FILES:
        if (folder / name).is_file():
            return folder / name
    check_adapter_files(folder, allow_pickle=allow_pickle)  # raises for a pickle-only folder without allow_pickle
    for name in ADAPTER_PICKLE_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointFileError(f"{folder} has no adapter weights ({', '.join(ADAPTER_SAFE_FILES)}).")


def load_task_adapter(
    model, path: str | os.PathLike, adapter_name: str, allow_pickle: bool = False, is_trainable: bool = False, **kwargs
):
    """Load the adapter at ``path`` (a folder, or a Hub id with optional ``subfolder``/``revision``) onto ``model``
    as ``adapter_name`` and return the ``PeftModel``: a plain model is wrapped (``PeftModel.from_pretrained``), a
    ``PeftModel`` gets one more adapter (``load_adapter``).

    Before anything is loaded: ``adapter_config.json`` must be a valid config, the weights must be safetensors
    (a pickle ``adapter_model.bin`` only with ``allow_pickle=True``, through torch's weights-only unpickler) and
    readable.
    While injecting, an LRC-Adapter checks the encoder (``encoder_fingerprint``, else ``encoder_signature``). After
    injecting, the tensors of the file must match the injected adapter and head modules one to one, by name and shape
    (an adapter whose ``target_modules`` match nothing, another label count or rank than its weights is refused);
    on a refusal the model is left as it was. Raises :class:`UnsafeCheckpointError`, :class:`CheckpointFileError`,
    :class:`AdapterConfigError` or :class:`AdapterMismatchError`, one line each.
    """
    from peft import MODEL_TYPE_TO_PEFT_MODEL_MAPPING, PeftModel
    from peft.utils import get_peft_model_state_dict

    folder = _adapter_folder(path, kwargs)
    config = _read_adapter_config(folder)
    file_shapes = _tensor_shapes(_adapter_weights_file(folder, allow_pickle))
    is_peft_model = isinstance(model, PeftModel)
    if is_peft_model and adapter_name in model.peft_config:
        raise ValueError(f"The model already has an adapter named {adapter_name!r}; choose another adapter_name.")
    # Inject first, compare the injected modules with the file's tensors, and only then load the weights, as
    # PeftModel.from_pretrained does in two steps (wrap or add_adapter, then load_adapter). Loading first would let
    # PEFT's own size check decide, and it lets some mismatches through to torch (its 4-bit heuristic skips a tensor
    # of exactly twice the model's size, e.g. a rank 8 adapter declared r=4), which then fails with a RuntimeError.
    config.inference_mode = not is_trainable
    try:
        if is_peft_model:
            model.add_adapter(adapter_name, config)
            peft_model = model
        else:
            peft_class = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(config.task_type, PeftModel)
            peft_model = peft_class(model, config, adapter_name=adapter_name)
    except AdapterMismatchError as err:
        raise AdapterMismatchError(f"adapter {folder}: {_one_line(err)}") from err
    except ValueError as err:  # e.g. target_modules that match nothing, a head_module the model lacks
        raise AdapterMismatchError(f"adapter {folder} does not fit this model: {_one_line(err)}") from err
    state = get_peft_model_state_dict(peft_model, adapter_name=adapter_name, save_embedding_layers=False)
    expected = {k: tuple(v.shape) for k, v in state.items()}
    problems = _describe_mismatch(expected, file_shapes, "adapter")
    if problems:
        if is_peft_model:
            peft_model.delete_adapter(adapter_name)
        else:
            peft_model.unload()  # puts the base layers back: the caller's model is as before
        raise AdapterMismatchError(
            f"adapter {folder} ({adapter_name!r}) does not fit this model: {problems}. Its adapter_config.json and "
            "adapter_model.safetensors do not belong together or were made for another encoder; save it again from "
            "the model it was trained with."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PEFT's notes on loading; the file was checked above
        peft_model.load_adapter(folder, adapter_name, is_trainable=is_trainable, **kwargs)
    if is_trainable and is_peft_model:
        peft_model.set_requires_grad(adapter_name)  # add_adapter leaves a new adapter frozen, as load_adapter would
    return peft_model


def load_peft_adapter(model, path: str | os.PathLike, adapter_name: str, allow_pickle: bool = False, **kwargs):
    """Former name of :func:`load_task_adapter` (same checks)."""
    return load_task_adapter(model, path, adapter_name, allow_pickle=allow_pickle, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# atomic saves


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (and ``root`` itself)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened/fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move the folder ``src`` to ``dst`` (same file system), replacing an existing ``dst`` folder.

    A new ``dst`` appears with one ``os.replace``. An existing one is renamed aside, ``src`` is moved in and the old
    one removed; if the move fails the old folder is put back. Readers never see a half-written folder; a crash
    between the two renames leaves the old version as ``.<name>.old-*`` next to ``dst``.
    """
    src, dst = Path(src), Path(dst)
    if not dst.exists():
        os.replace(src, dst)
    else:
        aside = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dst, aside)
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(aside, dst)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    _fsync_dir(dst.parent)


def _carry_over(old: Path, new: Path) -> None:
    """Hard-link (or copy) into ``new`` the entries of ``old`` that the new save did not write, except weight
    files at the top level, which the new save supersedes (a stale ``pytorch_model.bin`` must not survive)."""
    for entry in old.iterdir():
        target = new / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        elif not any(fnmatch.fnmatch(entry.name, p) for p in _WEIGHT_PATTERNS):
            _link_or_copy(entry, target)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _saved_adapter_names(model, kwargs: dict) -> list[str] | None:
    """Adapter names a ``PeftModel.save_pretrained`` call writes into sub-folders, or None for other models."""
    peft_config = getattr(model, "peft_config", None)
    if not isinstance(peft_config, dict) or not hasattr(model, "load_adapter"):
        return None
    return list(kwargs.get("selected_adapters") or peft_config)


def _record_encoder_fingerprint(model, adapters: list[str]) -> None:
    """Store the fingerprint of the encoder as it is at save time in each saved LRC adapter's config."""
    from .adapters.fingerprint import encoder_fingerprint
    from .adapters.lrc import LRCConfig

    configs = [model.peft_config[name] for name in adapters if isinstance(model.peft_config.get(name), LRCConfig)]
    if configs:
        fingerprint = encoder_fingerprint(model)
        for config in configs:
            config.encoder_fingerprint = fingerprint


def atomic_save_pretrained(model, path: str | os.PathLike, **kwargs) -> Path:
    """``model.save_pretrained(path, **kwargs)`` that a crash or kill cannot leave half-written.

    Everything is written to a temporary folder next to ``path`` (``.<name>.tmp-*``), fsynced, and then moved into
    place with :func:`replace_dir`:

    * a ``PeftModel`` writes one folder per adapter (``<path>/<adapter>/``, the ``default`` adapter at ``<path>``
      itself): each adapter folder is replaced as a unit, other adapters already in ``path`` are left alone; LRC
      adapters record the fingerprint of the encoder as it is at save time;
    * any other model (a ``transformers`` model, a tokenizer...) replaces ``path`` as a unit; entries of an existing
      ``path`` that the new save does not write (say an ``adapters/`` folder next to the encoder) are carried over,
      except top-level weight files, which the new save supersedes.

    If ``save_pretrained`` raises (disk full, interrupted), the temporary folder is removed and ``path`` is untouched;
    a process killed mid-save leaves its hidden temporary folder behind (remove ``.<name>.tmp-*`` folders when no
    save is running). Returns ``path``.
    """
    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    adapters = _saved_adapter_names(model, kwargs)
    if adapters is None or "default" in adapters:
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"{path} exists and is not a folder; refusing to replace it with a checkpoint.")
    if adapters:
        _record_encoder_fingerprint(model, adapters)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    try:
        model.save_pretrained(tmp, **kwargs)
        _fsync_tree(tmp)
        if adapters is None or "default" in adapters:
            if path.is_dir():
                _carry_over(path, tmp)
            replace_dir(tmp, path)
            return path
        path.mkdir(parents=True, exist_ok=True)
        for name in adapters:
            if (tmp / name).is_dir():
                replace_dir(tmp / name, path / name)
        for entry in tmp.iterdir():  # files PEFT writes at the top (README.md): one atomic rename each
            if entry.is_file():
                os.replace(entry, path / entry.name)
        _fsync_dir(path)
        return path
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
