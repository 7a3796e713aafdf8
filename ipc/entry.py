"""Start a process's entry point by import path, so a spawner needs no import of what it spawns.

The supervisor spawns workers as `multiprocessing` `spawn` children with target `run` and
arguments `("workers.process:main", <msgpack WorkerSpec>)`; the child imports the entry point
itself. Tests point the same path at a fake worker.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def resolve(path: str) -> Callable[..., Any]:
    """'pkg.mod:attr.sub' -> the object; raises ImportError/AttributeError with the path."""
    module_name, sep, attrs = path.partition(":")
    if not sep or not module_name or not attrs:
        raise ImportError(f"{path!r} is not an import path of the form 'package.module:callable'")
    obj: Any = importlib.import_module(module_name)
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AttributeError(f"{path!r}: {module_name} has no attribute {attrs!r}") from None
    if not callable(obj):
        raise TypeError(f"{path!r} is not callable")
    return obj


def run(entrypoint: str, spec: bytes) -> None:
    resolve(entrypoint)(spec)
