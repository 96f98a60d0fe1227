"""Key paths such as ``services.detect.demand[0].rate_rps``: parse them, read and set values by them.

Names may themselves contain dots (a hardware type ``gpu.v2``): at a mapping, a path step takes the
shortest run of dot-joined parts that is a key there, so ``hardware.gpu.v2.cost_per_hour`` works.
"""
from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from lepton_sim.scenario.schema import Scenario

Part = str | int

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]|(\.)")


class KeyPathError(ValueError):
    """A key path that is malformed or does not lead anywhere in the mapping it is applied to."""


def parse_path(path: str) -> list[Part]:
    """Split ``a.b[2].c`` into ``['a', 'b', 2, 'c']``; raise `KeyPathError` when malformed."""
    if not isinstance(path, str) or not path.strip():
        raise KeyPathError("expected a key path such as services.detect.demand[0].rate_rps")
    parts: list[Part] = []
    pos, expect_name = 0, True
    for m in _TOKEN.finditer(path):
        if m.start() != pos:
            break
        name, index, dot = m.groups()
        if name is not None:
            if not expect_name:
                break
            parts.append(name)
            expect_name = False
        elif index is not None:
            if expect_name:
                break
            parts.append(int(index))
        else:
            if expect_name:
                break
            expect_name = True
        pos = m.end()
    if pos != len(path) or expect_name:
        raise KeyPathError(f"malformed key path {path!r}: expected names joined by '.' and list indices like [0]")
    return parts


def format_path(parts: list[Part]) -> str:
    """The inverse of `parse_path`."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _step(node: Any, parts: list[Part], i: int) -> tuple[Any, int, Part] | None:
    """Follow one step from `node` at parts[i]: (child, next index, key), or None when absent."""
    part = parts[i]
    if isinstance(part, int):
        if isinstance(node, list) and part < len(node):
            return node[part], i + 1, part
        return None
    if not isinstance(node, Mapping):
        return None
    key = ""
    for j in range(i, len(parts)):
        if isinstance(parts[j], int):
            break
        key = f"{key}.{parts[j]}" if key else str(parts[j])
        if key in node:
            return node[key], j + 1, key
    return None


def get_path(data: Any, path: str) -> Any:
    """The value at `path` in nested mappings and lists; `KeyPathError` naming the missing step."""
    parts = parse_path(path)
    node, i = data, 0
    while i < len(parts):
        step = _step(node, parts, i)
        if step is None:
            raise KeyPathError(_missing(node, parts, i))
        node, i, _ = step
    return node


def set_path(data: Any, path: str, value: Any, *, schema: type[BaseModel] = Scenario) -> None:
    """Set `path` in place to `value`, creating a missing mapping key only where `schema` accepts it."""
    parts = parse_path(path)
    node, i = data, 0
    while True:
        step = _step(node, parts, i)
        if step is not None and step[1] == len(parts):
            node[step[2]] = value
            return
        if step is not None:
            node, i, _ = step
            continue
        if isinstance(parts[i], int) or not isinstance(node, dict) or not schema_accepts(schema, data, parts):
            raise KeyPathError(_missing(node, parts, i))
        rest = parts[i:]
        j = next((k for k, p in enumerate(rest) if isinstance(p, int)), len(rest))
        if j < len(rest):  # a list index below a key that is not there yet
            raise KeyPathError(_missing(node, parts, i))
        # the remaining names become nested mappings (the schema accepted each of them)
        for name in rest[:-1]:
            node = node.setdefault(str(name), {})
        node[str(rest[-1])] = value
        return


def _missing(node: Any, parts: list[Part], i: int) -> str:
    where = format_path(parts[:i]) or "the top level"
    part = parts[i]
    if isinstance(part, int):
        if isinstance(node, list):
            return f"no index [{part}]: {where} has {len(node)} entries"
        return f"{where} is not a list, cannot take index [{part}]"
    if isinstance(node, Mapping):
        keys = ", ".join(map(str, node)) or "(none)"
        return f"no key {part!r} at {where}; it has: {keys}"
    return f"{where} is not a mapping, cannot take key {part!r}"


# --- which keys the scenario schema accepts ------------------------------------------------------


def schema_accepts(schema: type[BaseModel], data: Any, parts: list[Part]) -> bool:
    """True when `parts` names a field the schema allows, even if the mapping does not set it yet.

    Walks the pydantic annotations: models by field name or alias, dicts by value type, lists by
    item type, and tagged unions by the `kind`/`op`/`dist` value found in `data` along the way.
    """
    tp: Any = schema
    node: Any = data
    for part in parts:
        parent = _unwrap(tp, node)
        tp = _child_type(parent, part)
        if tp is None:
            return False
        present = isinstance(node, Mapping) and part in node
        if not present and typing.get_origin(parent) in (dict, Mapping) and _is_model(_unwrap(tp, None)):
            return False  # a new named entry (a service, a site) is not a parameter to sweep
        if present:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return True


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _child_type(tp: Any, part: Part) -> Any:
    if _is_model(tp):
        if not isinstance(part, str):
            return None
        for name, field in tp.model_fields.items():
            if (part == name or part == field.alias) and not field.exclude:
                return field.annotation
        return None
    origin = typing.get_origin(tp)
    if origin in (dict, Mapping):
        return typing.get_args(tp)[1] if isinstance(part, str) else None
    if origin is list:
        return typing.get_args(tp)[0] if isinstance(part, int) else None
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(part, int):
            return None
        return args[0] if len(args) == 2 and args[1] is Ellipsis else (args[part] if part < len(args) else None)
    return None


_TAGS = ("kind", "op", "dist")


def _unwrap(tp: Any, node: Any) -> Any:
    """Strip Annotated and Optional; pick a union member by the tag found in `node` (else the first)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin is typing.Union or type(tp).__name__ == "UnionType":
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            tag = next((node[k] for k in _TAGS if isinstance(node, Mapping) and k in node), None)
            tp = next((m for m in members if _has_tag(m, tag)), members[0])
            continue
        return tp


def _has_tag(tp: Any, tag: Any) -> bool:
    tp = typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp
    if not _is_model(tp):
        return False
    for key in _TAGS:
        field = tp.model_fields.get(key)
        if field is not None and tag in typing.get_args(field.annotation):
            return True
    return False
