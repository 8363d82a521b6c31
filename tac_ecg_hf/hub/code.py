"""The code files a model repository needs for ``trust_remote_code`` loading where tac-ecg-hf is not installed.

``save_pretrained`` of the package's encoders and feature extractor copies their modules next to the weights
(transformers' ``custom_object_save``: the classes are registered for their Auto classes) and names them in the
JSON's ``auto_map``. A run folder can still lack them: an adapter run copies the frozen encoder's ``config.json`` and
weights from its base, which may be a bundled checkpoint (the package ships safetensors and JSON only, no code). This
module finds the modules that a folder's ``auto_map`` entries name but that the folder does not hold, and where in
the installed package they are, together with the modules they import relatively (``get_relative_import_files``,
the same walk transformers does when it loads remote code).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["missing_remote_code"]

#: the JSON files whose ``auto_map`` transformers reads (model config, feature extractor / processor)
_AUTO_MAP_FILES = ("config.json", "preprocessor_config.json")
_PACKAGE = Path(__file__).resolve().parents[1]


def _package_modules() -> dict[str, Path]:
    """Module stem -> file, for the package's modules that saving copies (each stem is unique in the package)."""
    found: dict[str, Path] = {}
    for path in _PACKAGE.rglob("*.py"):
        if path.stem.startswith(("configuration_", "modeling_", "feature_extraction_")):
            found[path.stem] = path
    return found


def _auto_map_modules(config_path: Path) -> set[str]:
    try:
        auto_map = json.loads(config_path.read_text(encoding="utf-8")).get("auto_map") or {}
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(auto_map, dict):
        return set()
    names = set()
    for value in auto_map.values():
        for ref in value if isinstance(value, (list, tuple)) else [value]:
            # "module.Class" is local code; "repo--module.Class" lives in another repo
            if isinstance(ref, str) and "--" not in ref and "." in ref:
                names.add(ref.split(".", 1)[0])
    return names


def missing_remote_code(folder: str | Path) -> dict[str, Path]:
    """``{path in the repo: package file}`` for every module an ``auto_map`` of ``folder`` (or of a subfolder) names
    that is not next to that JSON file, with the modules it imports relatively. Modules the package does not have
    are left out (transformers reports them when loading). Empty when the folder is complete."""
    from transformers.dynamic_module_utils import get_relative_import_files

    folder = Path(folder)
    package = None
    out: dict[str, Path] = {}
    for name in _AUTO_MAP_FILES:
        for config_path in sorted(folder.rglob(name)):
            if any(part.startswith(("checkpoint-", ".")) for part in config_path.relative_to(folder).parts):
                continue  # Trainer checkpoints and hidden folders are never published
            here = config_path.parent
            for module in sorted(_auto_map_modules(config_path)):
                if (here / f"{module}.py").is_file():
                    continue
                package = _package_modules() if package is None else package
                source = package.get(module)
                if source is None:
                    continue
                for path in [source, *map(Path, get_relative_import_files(source))]:
                    if not (here / path.name).is_file():
                        out[(here / path.name).relative_to(folder).as_posix()] = path
    return out
