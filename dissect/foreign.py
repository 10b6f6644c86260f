"""Load a network a person brings: its class from a file or module, its weights without pickles.

A model is named by a spec, ``path/to/file.py:Name`` or ``package.module:Name``, where ``Name``
is an ``nn.Module`` class or a function that returns one. Its weights are read and loaded by
:mod:`dissect.state_dicts` (whose functions this module also exports). Every problem a user can
cause raises :class:`AuditError` with one line: what is wrong and what to do.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from dissect.infra.errors import AuditError
from dissect.state_dicts import describe_exception, load_weights, one_line, read_state_dict

__all__ = ["import_model", "read_state_dict", "load_weights", "load_model", "parse_model_args"]

SPEC_FORM = "path/to/file.py:ClassName or package.module:ClassName"
MODEL_ARGS_EXAMPLE = """--model-args '{"channels": 16}'"""


def _split_spec(spec: str) -> tuple[str, str]:
    """``"target:Name"`` -> ``(target, Name)``; the last ':' splits, so ``C:\\m.py:Net`` works."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target.strip() or not name.strip():
        raise AuditError(f"model spec {spec!r} is not of the form {SPEC_FORM}")
    return target.strip(), name.strip()


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


@contextmanager
def _path_first(folder: Path) -> Iterator[None]:
    """Put ``folder`` first on ``sys.path`` for the duration, as ``python file.py`` would, so a
    model file can import the modules beside it."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


def _import_file(target: str) -> ModuleType:
    path = Path(target).expanduser()
    if not target.endswith(".py"):
        raise AuditError(f"model file {target!r} is not a .py file: give {SPEC_FORM}")
    if not path.is_file():
        raise AuditError(f"model file {target!r} does not exist: check the path in the model spec")
    path = path.resolve()
    stem = re.sub(r"\W", "_", path.stem)
    # A unique name, so that two files called model.py never share (or evict) a module.
    module_name = f"_dissect_foreign_{stem}_{uuid.uuid4().hex[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AuditError(f"model file {target!r} cannot be imported as Python: check the file")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses and typing look their module up in sys.modules.
    sys.modules[module_name] = module
    try:
        with _path_first(path.parent):
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise AuditError(
            f"model file {target!r} raised while being imported: {describe_exception(exc)}"
        ) from exc
    return module


def _import_module(target: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        # The named module itself is absent (not a module it imports in turn).
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and (target == missing or target.startswith(missing + ".")):
            raise AuditError(
                f"cannot import module {target!r} ({one_line(str(exc))}): check its name and "
                "that its folder is on PYTHONPATH, or give path/to/file.py:ClassName"
            ) from exc
        raise AuditError(
            f"cannot import module {target!r}: {describe_exception(exc)}; install what it needs"
        ) from exc
    except (Exception, SystemExit) as exc:
        raise AuditError(
            f"module {target!r} raised while being imported: {describe_exception(exc)}"
        ) from exc


def _defined_classes(module: ModuleType) -> list[str]:
    """The classes ``module`` itself defines, its ``nn.Module`` subclasses if it has any."""
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == module.__name__
    ]
    networks = [cls for cls in classes if issubclass(cls, nn.Module)]
    return sorted(cls.__name__ for cls in (networks or classes))


def _find_object(module: ModuleType, target: str, name: str) -> Any:
    obj: Any = module
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            found = _defined_classes(module)
            listing = ", ".join(found) if found else "no classes"
            raise AuditError(
                f"{target!r} has no {name!r}; it defines {listing}: name one of them in the spec"
            )
    return obj


def _build(factory: Any, name: str, model_args: Mapping[str, Any]) -> nn.Module:
    if not callable(factory):
        raise AuditError(
            f"{name!r} is a {type(factory).__name__}, not a class or function: name the model class"
        )
    try:
        model = factory(**model_args)
    except TypeError as exc:
        try:
            signature = f"{name}{inspect.signature(factory)}"
        except (TypeError, ValueError):
            signature = name
        raise AuditError(
            f"building {name} with arguments {dict(model_args)} failed "
            f"({describe_exception(exc)}): it takes {signature}; pass its arguments as a JSON "
            f"object, e.g. {MODEL_ARGS_EXAMPLE}"
        ) from exc
    except Exception as exc:
        raise AuditError(
            f"building {name} with arguments {dict(model_args)} failed: "
            f"{describe_exception(exc)}; check {MODEL_ARGS_EXAMPLE}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise AuditError(
            f"{name}(...) built an object of type {type(model).__name__}, not a torch.nn.Module: "
            "name the model class or a function that returns the model"
        )
    return model


def import_model(spec: str, model_args: dict[str, Any] | None = None) -> nn.Module:
    """Import the class or factory that ``spec`` names and build the model with ``model_args``.

    ``spec`` is ``path/to/file.py:Name`` (a relative or absolute path) or
    ``package.module:Name`` (an importable module). A file is imported under a unique module
    name, with its own folder first on ``sys.path`` while it runs, so it may import its
    neighbours. ``Name`` (dots reach nested attributes) is called as ``Name(**model_args)``.
    The model keeps the initial weights its constructor gives it.
    """
    target, name = _split_spec(spec)
    module = _import_file(target) if _is_file_target(target) else _import_module(target)
    factory = _find_object(module, target, name)
    return _build(factory, name, model_args or {})


def parse_model_args(text: str | None) -> dict[str, Any]:
    """The keyword arguments of ``--model-args``: a JSON object (nothing or blank: ``{}``)."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AuditError(
            f"--model-args is not valid JSON ({exc}): give an object, e.g. {MODEL_ARGS_EXAMPLE}"
        ) from exc
    if not isinstance(value, dict):
        raise AuditError(
            f"--model-args must be a JSON object of keyword arguments, not a "
            f"{type(value).__name__}: e.g. {MODEL_ARGS_EXAMPLE}"
        )
    return value


def load_model(
    spec: str, weights: str | Path | None, model_args: dict[str, Any] | None = None
) -> nn.Module:
    """Build the model ``spec`` names (see :func:`import_model`) and load ``weights`` into it
    (see :func:`read_state_dict`); with ``weights=None`` it keeps its initial weights. The model
    is returned in eval mode."""
    model = import_model(spec, model_args)
    if weights is None:
        model.eval()
    else:
        load_weights(model, read_state_dict(weights))
    return model
