"""Config system: nested dataclasses; defaults < YAML < dotted command-line overrides.

Every config is a dataclass owned by the module that uses it. ``load_config(cls, path, overrides)``
builds one: a YAML file overrides defaults, then ``key.sub=value`` strings override the YAML.
A key that does not exist, or a value of the wrong type, is a :class:`VQLadderError` naming the
valid keys / the expected type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import VQLadderError


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Convert ``value`` (from YAML or a CLI string) to ``typ``, or raise a one-line error."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        for a in args:
            try:
                return _coerce(value, a, where)
            except VQLadderError:
                pass
        raise VQLadderError(f"config key '{where}': cannot read {value!r} as {typ}")
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(typ) or (Any,)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise VQLadderError(f"config key '{where}': expected a list, got {value!r}")
        return [_coerce(v, inner, where) for v in value]
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise VQLadderError(f"config key '{where}': expected a mapping, got {value!r}")
        return build(typ, value, prefix=where + ".")
    if typ is Any:
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise VQLadderError(f"config key '{where}': expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise VQLadderError(f"config key '{where}': expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise VQLadderError(f"config key '{where}': expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise VQLadderError(f"config key '{where}': expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise VQLadderError(f"config key '{where}': expected a string, got {value!r}")
    return value


def build(cls, data: dict | None, prefix: str = ""):
    """Build dataclass ``cls`` from a (possibly partial) nested dict; unknown keys are errors."""
    data = dict(data or {})
    types_ = _field_types(cls)
    unknown = [k for k in data if k not in types_]
    if unknown:
        raise VQLadderError(
            f"unknown config key '{prefix}{unknown[0]}'; valid keys here: {', '.join(sorted(types_))}"
        )
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, typ in types_.items():
        if name in data:
            value = data[name]
            factory = fields[name].default_factory
            if isinstance(value, dict) and dataclasses.is_dataclass(typ) and factory is not dataclasses.MISSING:
                # a partial nested section overrides the field's own default (e.g. a 2-head LM), not the
                # nested class's defaults
                value = _merge(to_dict(factory()), value)
            kwargs[name] = _coerce(value, typ, prefix + name)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def to_dict(obj) -> dict:
    """A dataclass (nested) as plain dict, ready for YAML/JSON."""
    return dataclasses.asdict(obj)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | None) -> dict:
    """``["model.out_len=32", "train.lr=1e-3"]`` -> nested dict (values parsed as YAML scalars)."""
    tree: dict = {}
    for ov in overrides or []:
        if "=" not in ov:
            raise VQLadderError(f"override {ov!r} is not of the form key.sub=value")
        key, raw = ov.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise VQLadderError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise VQLadderError(f"config file {p} is not valid YAML" + (f" (line {line + 1})" if line is not None else ""))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise VQLadderError(f"config file {p} must hold a mapping at the top level")
    return data


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None):
    """defaults < ``base`` dict < YAML file at ``path`` < dotted ``overrides``."""
    tree = dict(base or {})
    if path is not None:
        tree = _merge(tree, read_yaml(path))
    tree = _merge(tree, parse_overrides(overrides))
    return build(cls, tree)


def save_yaml(obj, path: str | Path) -> None:
    from .io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(obj), sort_keys=False))
