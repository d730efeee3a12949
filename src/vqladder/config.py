"""Config system: nested dataclasses; defaults < YAML < dotted command-line overrides.

Every config is a dataclass owned by the module that uses it. ``load_config(cls, path, overrides)``
builds one: a YAML file overrides defaults, then ``key.sub=value`` strings override the YAML.
A key that does not exist, a duplicate key in a YAML file, a value of the wrong type or outside the range
its field declares is a :class:`VQLadderError` naming the valid keys / the expected type / the range.

Ranges are declared next to each field with the ``Annotated`` aliases below (``PosInt``, ``Unit``, …):
``lr: PosFloat = 1e-3``. Every float must be finite and every integer fit in 32 bits, declared or not.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import yaml

from .errors import VQLadderError


@dataclasses.dataclass(frozen=True)
class Check:
    """A declared range: ``min`` / ``max`` inclusive, ``gt`` / ``lt`` exclusive, ``allow`` extra values (e.g. -1 =
    disabled), ``length`` of a list, ``part``: a single path component (run names)."""

    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    allow: tuple = ()
    length: int | None = None
    part: bool = False

    def describe(self) -> str:
        if self.part:
            return "a non-empty name without '/' (not '.' or '..')"
        if self.length is not None:
            return f"a list of {self.length} values"
        lo = f">= {self.min:g}" if self.min is not None else f"> {self.gt:g}" if self.gt is not None else ""
        hi = f"<= {self.max:g}" if self.max is not None else f"< {self.lt:g}" if self.lt is not None else ""
        text = " and ".join(t for t in (lo, hi) if t) or "any value"
        return text + "".join(f", or {v:g}" for v in self.allow)

    def ok(self, v) -> bool:
        if self.part:
            return isinstance(v, str) and v not in ("", ".", "..") and "/" not in v and "\\" not in v
        if self.length is not None:
            return len(v) == self.length
        if v in self.allow:
            return True
        return ((self.min is None or v >= self.min) and (self.max is None or v <= self.max)
                and (self.gt is None or v > self.gt) and (self.lt is None or v < self.lt))


# Field types with a declared range; use them in config dataclasses (``steps: PosInt = 1000``).
PosInt = Annotated[int, Check(min=1)]                      # >= 1
NonNegInt = Annotated[int, Check(min=0)]                   # >= 0 (also seeds)
OptPosInt = Annotated[int, Check(min=1, allow=(-1,))]      # >= 1, or -1 = disabled / all
OptNonNegInt = Annotated[int, Check(min=0, allow=(-1,))]   # >= 0, or -1 = disabled / all
PosFloat = Annotated[float, Check(gt=0)]                   # > 0
NonNegFloat = Annotated[float, Check(min=0)]               # >= 0
OptPosFloat = Annotated[float, Check(gt=0, allow=(-1,))]   # > 0, or -1 = disabled
Unit = Annotated[float, Check(min=0, max=1)]               # in [0, 1]
OpenUnit = Annotated[float, Check(gt=0, lt=1)]             # in (0, 1)
HalfOpenUnit = Annotated[float, Check(min=0, lt=1)]        # in [0, 1)
RunName = Annotated[str, Check(part=True)]                 # a run directory's name under out_dir


def trunk(width: int, heads: int) -> type:
    """The fields every transformer of the project declares (width, heads, MLP ratio, init seed), declared once: a
    model's config inherits them with its own default width and heads. The fields come first in the config, under
    the same names as before, so saved configs and checkpoints read as they did.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class TinyConfig(trunk(64, 2)):
    ...     n_layers: PosInt = 2
    >>> TinyConfig(), TinyConfig(d_model=96).mlp_ratio
    (TinyConfig(d_model=64, n_heads=2, mlp_ratio=4.0, seed=0, n_layers=2), 4.0)
    """

    @dataclasses.dataclass
    class Trunk:
        d_model: PosInt = width          # transformer width
        n_heads: PosInt = heads          # attention heads
        mlp_ratio: PosFloat = 4.0        # MLP hidden = mlp_ratio x d_model
        seed: NonNegInt = 0              # init seed

    Trunk.__name__ = Trunk.__qualname__ = f"Trunk{width}x{heads}"
    return Trunk


class _ExpandUser:
    """Annotated marker of a path field: ``~`` and ``~user`` are expanded as a shell would."""


PathStr = Annotated[str, _ExpandUser()]                    # a file or folder path (``~/runs`` works)
INT_LIMIT = 2**31 - 1                                      # no config integer needs more


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _show(typ) -> str:
    if typing.get_origin(typ) is Annotated:
        return _show(typing.get_args(typ)[0])
    return getattr(typ, "__name__", None) or str(typ).replace("typing.", "")


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Convert ``value`` (from YAML or a CLI string) to ``typ``, or raise a one-line error."""
    origin = typing.get_origin(typ)
    if origin is Annotated:
        base, *checks = typing.get_args(typ)
        value = _coerce(value, base, where)
        for c in checks:
            if isinstance(c, _ExpandUser) and isinstance(value, str):
                value = os.path.expanduser(value)
            if isinstance(c, Check) and not c.ok(value):
                raise VQLadderError(f"config key '{where}' must be {c.describe()}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if isinstance(value, _Plain) and value.value is None:
            return None
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        for a in args:
            try:
                return _coerce(value, a, where)
            except VQLadderError:
                pass
        raise VQLadderError(f"config key '{where}': cannot read {value!r} as {' or '.join(map(_show, args))}")
    if isinstance(value, _Plain):  # a plain YAML scalar: its text for a string field, else what YAML reads
        if typ is str and value.value is not None:
            return str.__str__(value)
        value = value.value
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(typ) or (Any,)
        if isinstance(value, str):
            value = _yaml_value(value) if value.strip().startswith("[") else [_yaml_value(v) for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise VQLadderError(f"config key '{where}': expected a list, got {value!r}")
        return [_coerce(v, inner, where) for v in value]
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise VQLadderError(f"config key '{where}': expected a mapping, got {value!r}")
        return build(typ, value, prefix=where + ".")
    if typ is Any or typ is dict or typing.get_origin(typ) is dict:
        return unplain(value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise VQLadderError(f"config key '{where}': expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise VQLadderError(f"config key '{where}': expected an integer, got {value!r}")
        out = None
        if isinstance(value, int):
            out = value
        elif isinstance(value, float) and value.is_integer():
            out = int(value)
        elif isinstance(value, str):
            try:
                out = int(value)
            except ValueError:
                pass
        if out is None:
            raise VQLadderError(f"config key '{where}': expected an integer, got {value!r}")
        if abs(out) > INT_LIMIT:
            raise VQLadderError(f"config key '{where}': {out} is too large (at most {INT_LIMIT})")
        return out
    if typ is float:
        out = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                pass
        if out is None:
            raise VQLadderError(f"config key '{where}': expected a number, got {value!r}")
        if not math.isfinite(out):
            raise VQLadderError(f"config key '{where}' must be a finite number, got {value!r}")
        return out
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


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested dict as ``{"a.b.c": value}`` (lists stay values): how configs are compared key by key."""
    out = {}
    for k, v in (tree or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(old: dict, new: dict, skip=()) -> list[str]:
    """The dotted keys whose values differ between two config trees (``skip``: keys that may differ)."""
    a, b = flatten(unplain(old)), flatten(unplain(new))
    return sorted(k for k in set(a) | set(b) if k not in skip and k != "experiment" and a.get(k) != b.get(k))


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
        value = _yaml_value(raw)
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (YAML itself would keep the last silently) and a
    key that cannot be a config key (a list or mapping); merge keys (``<<: *base``) work as YAML defines them."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:
                raise _DuplicateKey(f"a key must be a name, not {type(key).__name__} "
                                    f"(line {key_node.start_mark.line + 1})")
            if dup:
                raise _DuplicateKey(f"key {key!r} appears twice in one section (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep)


class _DuplicateKey(Exception):
    pass


class _Plain(str):
    """A plain YAML scalar as written (``010``, ``0x1F``, ``2024-01-01``, ``on``) beside the value YAML reads
    (``value``): a string field keeps the text, a number or boolean field takes the value."""

    value: Any = None


class _ConfigLoader(_UniqueKeyLoader):
    """The loader of configs and overrides: every number, boolean, null or date is a :class:`_Plain`."""


def _keep_text(tag: str):
    base = getattr(yaml.SafeLoader, f"construct_yaml_{tag}")

    def construct(loader, node):
        value = base(loader, node)
        plain = _Plain(node.value)
        plain.value = value
        return plain

    return construct


for _tag in ("bool", "int", "float", "null", "timestamp"):
    _ConfigLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _keep_text(_tag))


def unplain(v):
    """A tree read by the config loader, back to plain YAML values."""
    if isinstance(v, _Plain):
        return v.value
    if isinstance(v, dict):
        return {unplain(k): unplain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [unplain(x) for x in v]
    return v


def _yaml_value(raw: str):
    """One command-line value, read as YAML by the config loader (text that is not YAML stays text)."""
    if raw == "":
        return ""
    try:
        return yaml.load(raw, Loader=_ConfigLoader)
    except (yaml.YAMLError, _DuplicateKey):
        return raw


def read_yaml(path: str | Path, raw: bool = False) -> dict:
    """A YAML config file as a dict; one line for a missing, unreadable or invalid one. ``raw``: scalars as
    :class:`_Plain` (what ``load_config`` builds from, so ``name: 010`` stays the string ``010``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise VQLadderError(f"config file {p} is a directory")
    if not p.is_file():
        raise VQLadderError(f"config file not found: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_ConfigLoader if raw else _UniqueKeyLoader)
    except _DuplicateKey as e:
        raise VQLadderError(f"config file {p}: {e}")
    except UnicodeDecodeError:
        raise VQLadderError(f"config file {p} is not UTF-8 text")
    except IsADirectoryError:
        raise VQLadderError(f"config file {p} is a directory")
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        why = getattr(e, "problem", None)
        raise VQLadderError(f"config file {p} is not valid YAML" + (f" (line {line + 1}" if line is not None else "")
                            + (f": {why})" if why and line is not None else ")" if line is not None else ""))
    except OSError as e:
        raise VQLadderError(f"cannot read config file {p}: {(e.strerror or str(e)).lower()}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise VQLadderError(f"config file {p} must hold a mapping at the top level")
    return data


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None):
    """defaults < ``base`` dict < YAML file at ``path`` < dotted ``overrides``; a typo in a key names the valid keys.

    >>> from vqladder import RunConfig, load_config
    >>> cfg = load_config(RunConfig, "configs/demo.yaml", ["model.out_len=16", "train.steps=50"])  # doctest: +SKIP
    >>> cfg = load_config(RunConfig, None, ["model.out_len=16", "train.steps=50"])
    >>> cfg.model.out_len, cfg.train.steps, cfg.model.in_len
    (16, 50, 256)
    >>> load_config(RunConfig, None, ["model.out_lenn=16"])
    Traceback (most recent call last):
    ...
    vqladder.errors.VQLadderError: unknown config key 'model.out_lenn'; valid keys here: ..., out_len, ...
    """
    tree = dict(base or {})
    if path is not None:
        doc = read_yaml(path, raw=True)
        if isinstance(doc, dict):
            doc.pop("experiment", None)  # which experiment the file is for: checked by the CLI, not a field
        tree = _merge(tree, doc)
    tree = _merge(tree, parse_overrides(overrides))
    return build(cls, tree)


def derive(cfg, **changes):
    """A copy of the typed config ``cfg`` with ``changes`` (``dataclasses.replace`` on a deep copy, so nothing
    nested is shared with the original): the one way a recipe derives a stage's config from the user's.

    >>> from vqladder import TrainerConfig
    >>> base = TrainerConfig(steps=100, lr=1e-3)
    >>> stage = derive(base, seed=3)
    >>> (stage.steps, stage.seed, base.seed, type(stage).__name__)
    (100, 3, 0, 'TrainerConfig')
    """
    import copy
    import dataclasses

    return dataclasses.replace(copy.deepcopy(cfg), **changes)


def save_yaml(obj, path: str | Path) -> None:
    from .io import atomic_write_text

    doc = to_dict(obj)
    experiment = getattr(type(obj), "EXPERIMENT", None)  # so that `vqladder run SAVED.yaml` knows what it is
    atomic_write_text(Path(path), yaml.safe_dump({"experiment": experiment, **doc} if experiment else doc,
                                                 sort_keys=False))
