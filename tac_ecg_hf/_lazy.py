"""Post-import hooks: run a function when another package finishes importing.

``import tac_ecg_hf`` must stay cheap (the CLI starts with it), yet ``peft.PeftModel.from_pretrained`` of an
LRC-Adapter and ``transformers.pipeline("ecg-classification")`` must work in whatever order a user imports things.
Importing PEFT or ``transformers.pipelines`` eagerly would double the import time, so the package registers its
PEFT method and its pipelines the moment those modules are imported, and at once if they already are. This is the
pattern of ``wrapt.register_post_import_hook``, written with the standard library's meta path finder API.

A callback must be idempotent and must tolerate the module it imports being half-initialised (it only imports the
package module that performs the registration at its own end).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
from collections.abc import Callable

_lock = threading.Lock()
_pending: dict[str, list[Callable[[object], None]]] = {}


def when_imported(name: str, callback: Callable[[object], None]) -> None:
    """Call ``callback(module)`` once module ``name`` is imported (now, if it already is)."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _pending.setdefault(name, []).append(callback)
            if not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
                sys.meta_path.insert(0, _PostImportFinder())
            return
    callback(module)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched module it asks the other finders and wraps the loader's ``exec_module``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module, _original=original, _name=fullname):
            _original(module)
            with _lock:
                callbacks = _pending.pop(_name, [])
            for callback in callbacks:
                callback(module)

        loader.exec_module = exec_module
        return spec


def lazy_exports(package: str, exports: dict[str, str]):
    """A module ``__getattr__`` (PEP 562) for ``package``: each name in ``exports`` is imported from the submodule
    named for it (relative to ``package``) on first access, so that importing the package itself stays cheap."""
    import importlib

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
