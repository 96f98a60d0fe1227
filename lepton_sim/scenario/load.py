"""Read a scenario file: parse YAML, resolve `from:` entries, validate once, check cross-references.

This is the only boundary where scenario input is checked. Every problem found names the file,
the key path (``services.detect.demand[1].rate_rps``) and what was expected, and all of a file's
problems are raised together as one `ScenarioError` (a numbered list when there are several):
schema problems first, an unknown key first of all with the valid key it is closest to, then
references to names the file does not define, then the checks that need the whole typed scenario.
Past this point the code trusts the typed `Scenario`; `Scenario.notes` says what is valid but has
no effect.
"""
from __future__ import annotations

import copy
import csv
import difflib
import math
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lepton_sim.catalogue import THIS_MACHINE, hardware_entry, hardware_names
from lepton_sim.catalogue.zoo import zoo_model, zoo_names
from lepton_sim.errors import ScenarioError
from lepton_sim.layers import LayerShapeError, layer_costs
from lepton_sim.profiles import Codec, codec_model, digits_variants, load_profile_cached, reference_profile_path
from lepton_sim.scenario.schema import (MODEL_TAG, FixedTokens, JobPlacement, LLMModelSpec, ModelSpec, Replicas,
                                        Scenario, TokenTrace, Trace, UniformTokens, bucket_ranges, bucket_service,
                                        is_llm, prompt_intervals)
from lepton_sim.servicetime import BatchTimesCache, UnsupportedPrecision

DEFAULT_SCENARIO = "default.yaml"


def default_scenario_path() -> Path:
    """The built-in default scenario shipped inside the package."""
    return Path(str(resources.files("lepton_sim") / "data" / DEFAULT_SCENARIO))


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Load and validate a scenario file (the built-in default when `path` is None)."""
    p = default_scenario_path() if path is None else Path(path)
    file = str(path) if path is not None else f"<built-in {DEFAULT_SCENARIO}>"
    if not p.exists():
        raise ScenarioError("no such file", file=file)
    if p.is_dir():
        raise ScenarioError("is a directory, expected a scenario YAML file", file=file)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", file=file) from None
    data = parse_yaml(text, file)
    return parse_scenario(data, file=file, base_dir=p.parent)


def parse_yaml(text: str, file: str) -> Any:
    """Parse YAML strictly: duplicate keys are errors, syntax errors carry the line and column.

    libyaml's C parser reads the file when PyYAML has it (several times faster on large fleets);
    a file it rejects is read again by the pure-Python parser, whose messages (and marks) are the
    ones reported, so a broken file says the same whichever parser is installed.
    """
    if _FastStrictLoader is not None:
        try:
            return yaml.load(text, Loader=_FastStrictLoader)  # noqa: S506 - a CSafeLoader subclass
        except yaml.YAMLError:
            pass  # reported below, in the pure-Python parser's words
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise ScenarioError(f"malformed YAML: {_yaml_problem(exc)}", file=file) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"malformed YAML: {exc}", file=file) from None


def parse_scenario(data: Any, *, file: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Validate an already-parsed scenario mapping (used by sweeps, which edit the mapping first).

    Raises one `ScenarioError` carrying every problem found (see the module docstring).
    """
    if not isinstance(data, Mapping):
        raise ScenarioError(f"expected a mapping of scenario keys at the top, got {_kind(data)}", file=file)
    problems: list[ScenarioError] = []
    raw, broken = _resolve_entries(copy.deepcopy(dict(data)), file, problems, base_dir or Path.cwd())
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        problems += _schema_problems(exc, raw, file, broken)
    said = {p.path for p in problems}
    problems += [ScenarioError(msg, file=file, path=path) for path, msg in _reference_problems(raw)
                 if path not in said]
    if scenario is not None:
        scenario = _name_entries(scenario)
        checker = _Checker(scenario, file, base_dir or Path.cwd(), known=len(problems))
        checker.run()
        problems += checker.problems
    if problems:
        raise ScenarioError.of(problems)
    assert scenario is not None
    scenario._notes = tuple(_notes(scenario))
    return scenario


def _notes(s: Scenario) -> list[str]:
    """Valid settings that have no effect, as ``key.path: why`` lines for `lepton-sim check`."""
    return [f"services.{name}.batching.max_wait_ms: {svc.batching.unused_wait_ms:g} ms has no effect with "
            f"max_batch 1 (a replica takes each request as it comes; nothing to wait for)"
            for name, svc in s.services.items() if svc.batching.unused_wait_ms > 0]


# --- YAML ------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_FastStrictLoader: Any = None
if getattr(yaml, "__with_libyaml__", False):
    class _CStrictLoader(yaml.CSafeLoader):  # type: ignore[name-defined,misc]
        """The same strict loader on libyaml's C parser."""

    _CStrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _FastStrictLoader = _CStrictLoader

# What was left open when YAML met something it could not continue with (the context mark).
_UNCLOSED = {
    "while parsing a flow mapping": "a flow mapping ({...}) opened here is not closed",
    "while parsing a flow sequence": "a flow sequence ([...]) opened here is not closed",
    "while scanning a quoted scalar": "a quoted string opened here is not closed",
}


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """Where the file is broken, 1-based, and what YAML expected there.

    YAML notices an unclosed bracket or quote only where the next thing cannot belong to it, often
    a line or more later (or the end of the file); the broken line is then where it was opened.
    """
    problem, context = exc.problem or str(exc), exc.context or ""
    pm, cm = exc.problem_mark, exc.context_mark

    def at(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    if cm is not None and pm is not None and cm.line < pm.line and context in _UNCLOSED:
        return f"{at(cm)}: {_UNCLOSED[context]}: {problem} at {at(pm)}"
    mark = pm or cm
    return f"{at(mark)}: {problem}" if mark is not None else problem


# --- from: catalogue and zoo entries -------------------------------------------------------


def _resolve_entries(raw: dict, file: str, problems: list[ScenarioError],
                     base_dir: Path) -> tuple[dict, set[tuple]]:
    """Replace `from:` references with the catalogue/zoo entry overlaid by the scenario's keys,
    then overlay each hardware entry's `calibration:` file (its fitted efficiency figures).

    A reference that cannot be resolved is added to `problems`, and its entry's location is
    returned among the broken ones, whose schema errors (consequences of it) are not reported.
    """
    broken: set[tuple] = set()
    hardware = raw.get("hardware")
    # Entries whose calibration comes with their catalogue entry rather than from the scenario.
    inherited = {name for name, entry in (hardware.items() if isinstance(hardware, dict) else ())
                 if isinstance(entry, dict) and "from" in entry and "calibration" not in entry}
    for section, overlay in (("hardware", _overlay_hardware), ("models", _overlay_model)):
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            if isinstance(entry, dict) and "from" in entry:
                try:
                    entries[name] = overlay(entry, f"{section}.{name}", file)
                except ScenarioError as exc:
                    problems.append(exc)
                    broken.add((section, name))
    for name, entry in (hardware.items() if isinstance(hardware, dict) else ()):
        if isinstance(entry, dict) and isinstance(entry.get("calibration"), str) and ("hardware", name) not in broken:
            try:
                hardware[name] = _calibrated(entry, f"hardware.{name}.calibration", file, base_dir,
                                             inherited=name in inherited)
            except ScenarioError as exc:
                problems.append(exc)
    return raw, broken


def _calibrated(entry: dict, path: str, file: str, base_dir: Path, *, inherited: bool = False) -> dict:
    """``entry`` with the fitted figures of the calibration file it names (relative to the scenario).

    A file the scenario names must fit the entry's datasheet figures (else an error). The catalogue's
    own calibration, where the scenario overrides a figure it was fitted against (a peak, the
    bandwidth), no longer applies: the entry falls back to its kind's defaults and says why.
    """
    # Imported here: the calibration fit brings scipy, which a scenario without `calibration:` never needs.
    from lepton_sim.calibration.file import apply as apply_calibration
    from lepton_sim.calibration.file import load as load_calibration
    from lepton_sim.calibration.file import mismatch as calibration_mismatch

    rel = Path(entry["calibration"])
    where = rel if rel.is_absolute() else base_dir / rel
    try:
        doc = load_calibration(where)
    except FileNotFoundError:
        raise ScenarioError(f"calibration file not found: {where}", file=file, path=path) from None
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{where}: not a valid calibration file: {exc}", file=file, path=path) from None
    why = calibration_mismatch(doc, entry)
    if why is not None and inherited:
        sources = {**(entry.get("sources") or {}),
                   "calibration": f"not calibrated: the catalogue's calibration ({_shown(where)}) does not apply "
                                  f"once the scenario changes its datasheet figures: {why.split('; re-run')[0]}"}
        return {**entry, "calibration": None, "sources": sources}
    if why is not None:
        raise ScenarioError(f"{where} does not apply here: {why}", file=file, path=path)
    return apply_calibration(doc, entry, _shown(where))


def _shown(p: Path) -> str:
    """A calibration file's path as reports show it: inside the installed catalogue, from the package."""
    parts = p.parts
    if "catalogue" in parts and "lepton_sim" in parts:
        return "/".join(parts[parts.index("lepton_sim"):])
    return str(p)


def _overlay_hardware(entry: dict, path: str, file: str) -> dict:
    ref = entry["from"]
    if ref == THIS_MACHINE and "profile" not in entry:
        entry = {**entry, "profile": str(reference_profile_path())}  # its compute times are the measured ones
    try:
        base = hardware_entry(str(ref))
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"cannot build {ref!r} from its kernel profile: {exc}", file=file,
                            path=f"{path}.from") from None
    except KeyError:
        raise ScenarioError(
            f"unknown hardware catalogue entry {ref!r}; known: {', '.join(hardware_names())}",
            file=file, path=f"{path}.from",
        ) from None
    overrides = {k: v for k, v in entry.items() if k != "from"}
    sources = dict(base.get("sources", {}))
    for key in overrides:
        if key != "sources":
            sources[key] = "set in the scenario file"
    base.update(overrides)
    base["sources"] = {**sources, **overrides.get("sources", {})}
    return base


def _overlay_model(entry: dict, path: str, file: str) -> dict:
    ref = entry["from"]
    params = {k: entry[k] for k in ("seq_len",) if k in entry}
    try:
        base = zoo_model(str(ref), **params)
        if ref == "digits-mlp":  # the real model: variant accuracy as measured on its test set
            base["variants"] = digits_variants(load_profile_cached(reference_profile_path()))
    except KeyError:
        raise ScenarioError(
            f"unknown model zoo entry {ref!r}; known: {', '.join(zoo_names())}", file=file, path=f"{path}.from"
        ) from None
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"bad zoo parameters: {exc}", file=file, path=path) from None
    overrides = {k: v for k, v in entry.items() if k not in ("from", "seq_len")}
    variants = {**base.get("variants", {}), **(overrides.pop("variants", None) or {})}
    base.update(overrides)
    base["variants"] = variants
    return base


def _name_entries(s: Scenario) -> Scenario:
    hardware = {k: v.model_copy(update={"name": k}) for k, v in s.hardware.items()}
    models = {k: v.model_copy(update={"name": k}) for k, v in s.models.items()}
    return s.model_copy(update={"hardware": hardware, "models": models})


# --- pydantic errors -> problems ------------------------------------------------------------


def _schema_problems(exc: ValidationError, raw: Any, file: str, broken: set[tuple]) -> list[ScenarioError]:
    """Every schema error as a problem: unknown keys first, each with the valid key closest to it.

    An unknown key that is a near miss of a required key missing beside it is one problem (the
    typo, with the suggestion), not two. Errors of one location (a union's members) are merged.
    """
    by_loc: dict[tuple, list[dict]] = {}
    errors = exc.errors(include_url=False)
    index: dict[int, dict] = {}  # id(mapping) -> key -> its place (one scan per mapping, not per error)
    errors.sort(key=lambda e: _position(raw, _clean_loc(e["loc"], raw), index))  # the file's order
    for err in errors:
        loc = _clean_loc(err["loc"], raw)
        if any(loc[:len(b)] == b for b in broken):
            continue  # a consequence of an unresolved `from:`, already reported
        by_loc.setdefault(loc, []).append(err)
    missing: dict[tuple, list[str]] = {}  # parent location -> its required keys that are not given
    for loc, errs in by_loc.items():
        if errs[0]["type"] == "missing":
            missing.setdefault(loc[:-1], []).append(str(loc[-1]))
    said: set[tuple] = set()
    unknown: list[ScenarioError] = []
    for loc, errs in by_loc.items():
        if errs[0]["type"] == "extra_forbidden":
            unknown.append(_unknown_key(loc, raw, file, missing, said))
    others = [_problem(loc, errs, file) for loc, errs in by_loc.items()
              if errs[0]["type"] != "extra_forbidden" and loc not in said]
    return unknown + others


def _unknown_key(loc: tuple, raw: Any, file: str, missing: dict[tuple, list[str]], said: set[tuple]) -> ScenarioError:
    parent, key = loc[:-1], str(loc[-1])
    allowed = _allowed_keys(parent, raw)
    node = _node_at(raw, parent)
    present = set(node) if isinstance(node, dict) else set()
    absent_required = missing.get(parent, [])
    near = difflib.get_close_matches(key, absent_required, n=1, cutoff=0.6)
    if near:
        said.add((*parent, near[0]))  # the missing required key is this typo: say it once
        return ScenarioError(f"unknown key {key!r}; did you mean {near[0]!r}? ({near[0]} is required and not given)",
                             file=file, path=_fmt_loc(loc))
    # A key already there is a likelier miss only when no other is near: after `from:` the entry
    # holds every key of the catalogue's, which the user may be trying to override.
    near = (difflib.get_close_matches(key, [k for k in allowed if k not in present], n=1, cutoff=0.6)
            or difflib.get_close_matches(key, allowed, n=1, cutoff=0.6))
    hint = f"; did you mean {near[0]!r}?" if near else ""
    listed = f" (expected one of: {', '.join(allowed)})" if near and allowed else \
        f"; expected one of: {', '.join(allowed)}" if allowed else ""
    return ScenarioError(f"unknown key {key!r}{hint}{listed}", file=file, path=_fmt_loc(loc))


def _problem(loc: tuple, errs: list[dict], file: str) -> ScenarioError:
    """One location's errors as one problem (several when a value matched none of a union's members)."""
    path = _fmt_loc(loc)
    err = errs[0]
    kind = err["type"]
    if kind == "missing":
        return ScenarioError("required key is missing", file=file, path=path)
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return ScenarioError(
            f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} {ctx.get('tag')!r}; expected one of: "
            f"{ctx.get('expected_tags')}", file=file, path=path)
    if kind == "union_tag_not_found":
        ctx = err.get("ctx", {})
        return ScenarioError(f"missing {ctx.get('discriminator', 'kind')} key", file=file, path=path)
    msgs = list(dict.fromkeys(_lower_first(e["msg"].removeprefix("Value error, ")) for e in errs))
    if len(msgs) > 1 and all(m.startswith("input should be ") for m in msgs):  # a union: what each member takes
        msgs = ["input should be " + " or ".join(dict.fromkeys(
            m.removeprefix("input should be ").split(", ")[0] for m in msgs))]
    got = err.get("input")
    got_txt = "" if kind.startswith("value_error") or isinstance(got, (dict, list)) else f", got {got!r}"
    return ScenarioError(f"{' or '.join(msgs)}{got_txt}", file=file, path=path)


def _clean_loc(loc: tuple, raw: Any) -> tuple:
    """The error's location as keys and indices of the file.

    Pydantic inserts discriminated-union tags ('mmpp'), `[key]` and the names of a scalar union's
    members ('str', 'int') into locations; none of them is in the file.
    """
    out: list = []
    node = raw
    for part in loc:
        if part == "[key]" or part == MODEL_TAG:
            continue
        if isinstance(node, dict):
            if part in node:
                out.append(part)
                node = node[part]
            elif part in {node.get(k) for k in ("kind", "op", "dist")}:
                continue
            else:
                out.append(part)  # a missing key
                break
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        else:
            break  # below a scalar: the labels of union members
    return tuple(out)


def _position(raw: Any, loc: tuple, index: dict[int, dict] | None = None) -> tuple[int, ...]:
    """Where `loc` is in the file, as indices in key order (a missing key sorts after its siblings).

    `index` caches each mapping's key -> place by the mapping's id, for many calls on one unchanged
    `raw` (sorting every error of a large file), so that each mapping is scanned once.
    """
    index = {} if index is None else index
    out: list[int] = []
    node = raw
    for part in loc:
        if isinstance(node, dict):
            places = index.get(id(node))
            if places is None:
                places = index[id(node)] = {k: i for i, k in enumerate(node)}
            out.append(places[part] if part in node else len(places))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            out.append(part)
            node = node[part] if part < len(node) else None
        else:
            break
    return tuple(out)


def _node_at(raw: Any, loc: tuple) -> Any:
    node = raw
    for part in loc:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _fmt_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<top level>"


def _allowed_keys(parent: tuple, raw: Any) -> list[str]:
    """The keys the model at `parent` accepts, found by walking the schema along the path."""
    tp: Any = Scenario
    node = raw
    for part in parent:
        tp = _step_type(tp, part, node)
        node = node.get(part) if isinstance(node, dict) else node[part] if isinstance(node, list) else None
        if tp is None:
            return []
    tp = _unwrap(tp, node)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items() if not (f.exclude)]
    return []


def _step_type(tp: Any, part: Any, node: Any) -> Any:
    tp = _unwrap(tp, node)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(part) or next(
            (f for f in tp.model_fields.values() if f.alias == part), None
        )
        return field.annotation if field else None
    origin = typing.get_origin(tp)
    if origin in (dict, Mapping):
        return typing.get_args(tp)[1]
    if origin in (list, tuple):
        return typing.get_args(tp)[0]
    return None


def _unwrap(tp: Any, node: Any) -> Any:
    """Strip Optional/Annotated and pick a union member by its discriminator value in `node`."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
            tag = next((node.get(k) for k in ("kind", "op", "dist") if isinstance(node, dict) and k in node), None)
            for m in members:
                m2 = _unwrap(m, None)
                if isinstance(m2, type) and issubclass(m2, BaseModel):
                    for key in ("kind", "op", "dist"):
                        f = m2.model_fields.get(key)
                        if f is not None and tag in typing.get_args(f.annotation):
                            return m2
            return members[0]
        else:
            return tp


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s


def _kind(v: Any) -> str:
    return "nothing (empty file)" if v is None else type(v).__name__


# --- references to names, on the mapping ---------------------------------------------------


def _reference_problems(raw: dict) -> list[tuple[str, str]]:
    """(key path, message) for every name used but not defined: sites, models, variants, hardware, services.

    These read the mapping rather than the typed scenario, so that they are reported beside the
    schema's problems even when those keep the scenario from being typed. A section that is not
    the right shape is skipped (the schema reports it).
    """
    out: list[tuple[str, str]] = []
    sites, hardware = _defined(raw.get("sites")), _defined(raw.get("hardware"))
    model_names, service_names = _defined(raw.get("models")), _defined(raw.get("services"))
    models, services = _mapping(raw.get("models")), _mapping(raw.get("services"))
    misnamed: set[str] = set()  # services whose `variants` name one their model does not have
    said: dict[tuple[str, str], str] = {}  # (what, name) -> its message: one typo used a thousand times

    def ref(path: str, what: str, name: Any, known: _Names | None) -> bool:
        """Record `name` at `path` if unknown; True when it is known (or cannot be checked)."""
        if known is None or not isinstance(name, str) or name in known:
            return True
        msg = said.get((what, name))
        if msg is None:
            msg = said[(what, name)] = _unknown(what, name, known)
        out.append((path, msg))
        return False

    for i, link in enumerate(_list(raw.get("links"))):
        between = link.get("between") if isinstance(link, dict) else None
        for j, site in enumerate(between if isinstance(between, list) else []):
            ref(f"links[{i}].between[{j}]", "site", site, sites)
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        path = f"services.{name}"
        model = svc.get("model")
        if ref(f"{path}.model", "model", model, model_names) and isinstance(model, str):
            have = _variant_names(models.get(model))
            for i, v in enumerate(_list(svc.get("variants"))):
                if have is not None and isinstance(v, str) and v not in have:
                    misnamed.add(name)
                    out.append((f"{path}.variants[{i}]", f"model {model!r} has no variant {v!r}{_near(v, have)}; "
                                                         f"it has: {', '.join(have)}"))
        for i, d in enumerate(_list(svc.get("demand"))):
            if isinstance(d, dict):
                ref(f"{path}.demand[{i}].site", "site", d.get("site"), sites)
    dep = raw.get("deployment")
    for i, r in enumerate(_list(dep.get("replicas")) if isinstance(dep, dict) else []):
        if not isinstance(r, dict):
            continue
        path = f"deployment.replicas[{i}]"
        ref(f"{path}.site", "site", r.get("site"), sites)
        ref(f"{path}.hardware", "hardware type", r.get("hardware"), hardware)
        service = r.get("service")
        if not ref(f"{path}.service", "service", service, service_names) or not isinstance(service, str):
            continue
        svc = services.get(service)
        svc = svc if isinstance(svc, dict) else {}
        model, variant = svc.get("model"), r.get("variant")
        have = _variant_names(models.get(model)) if isinstance(model, str) else None
        if have is not None and isinstance(variant, str) and variant not in have:
            out.append((f"{path}.variant", f"model {model!r} has no variant {variant!r}{_near(variant, have)}; "
                                           f"it has: {', '.join(have)}"))
        elif isinstance(svc.get("variants"), list) and isinstance(variant, str) and variant not in svc["variants"] \
                and service not in misnamed:
            out.append((f"{path}.variant", f"variant {variant!r} is not among services.{service}.variants "
                                           f"{svc['variants']}"))
    for name, job in _mapping(raw.get("jobs")).items():
        if not isinstance(job, dict):
            continue
        path = f"jobs.{name}"
        model, variant = job.get("model"), job.get("variant", "fp16")
        if ref(f"{path}.model", "model", model, model_names) and isinstance(model, str):
            have = _variant_names(models.get(model))
            if have is not None and isinstance(variant, str) and variant not in have:
                out.append((f"{path}.variant", f"model {model!r} has no variant {variant!r}{_near(variant, have)}; "
                                               f"it has: {', '.join(have)}"))
        parts = [("placement", job.get("placement")), ("sync", job.get("sync"))]
        parts += [(f"also[{i}]", p) for i, p in enumerate(_list(job.get("also")))]
        for part, where in parts:
            if isinstance(where, dict):
                if "site" in where:
                    ref(f"{path}.{part}.site", "site", where.get("site"), sites)
                if "hardware" in where:
                    ref(f"{path}.{part}.hardware", "hardware type", where.get("hardware"), hardware)
    pairs = [b for b in (link.get("between") for link in _list(raw.get("links")) if isinstance(link, dict))
             if isinstance(b, list) and len(b) == 2 and all(isinstance(x, str) for x in b)]
    links = [f"{a}--{b}" for a, b in pairs]
    either_way = set(links) | {f"{b}--{a}" for a, b in pairs}
    for name in _mapping(raw.get("failures")):
        if hardware is not None and name not in hardware and name not in either_way:
            known = [*hardware, *links]
            out.append((f"failures.{name}", f"not a hardware type or a link (site--site){_near(str(name), known)}; "
                                            f"known: {', '.join(known)}"))
    return out


class _Names(list):
    """A section's names in file order (as messages list them), with a set beside them for `in`:
    a fleet's thousands of sites are looked up once per reference, not scanned."""

    def __init__(self, names: Any) -> None:
        super().__init__(names)
        self._set = frozenset(self)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._set
        except TypeError:  # unhashable: compared one by one, as a list does
            return list.__contains__(self, name)


def _defined(section: Any) -> _Names | None:
    """The names a section defines, or None when it is not a mapping (then nothing can be checked)."""
    return _Names(str(k) for k in section) if isinstance(section, dict) else None


def _mapping(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list:
    return v if isinstance(v, list) else []


def _variant_names(model: Any) -> list[str] | None:
    """A model entry's variant names (after `from:` is resolved), the schema's default when it sets none."""
    if not isinstance(model, dict):
        return None
    variants = model.get("variants", _DEFAULT_LLM_VARIANTS if model.get("kind") == "llm" else _DEFAULT_VARIANTS)
    return [str(k) for k in variants] if isinstance(variants, dict) else None


_DEFAULT_VARIANTS = ModelSpec.model_fields["variants"].get_default(call_default_factory=True)
_DEFAULT_LLM_VARIANTS = LLMModelSpec.model_fields["variants"].get_default(call_default_factory=True)


def _near(name: str, known: list[str]) -> str:
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _unknown(what: str, name: str, known: list[str]) -> str:
    plural = "hardware types" if what == "hardware type" else f"{what}s"
    return f"unknown {what} {name!r}{_near(name, known)}; {plural} are: {', '.join(known) or '(none)'}"


# --- checks on the typed scenario -----------------------------------------------------------


class _Checker:
    """Checks that need the whole typed scenario: shapes, files, capacity, memory, connectivity.

    Every problem is collected in `problems`. A line naming something undefined is skipped (that is
    a reference problem, already reported); the checks over the whole scenario (every demand site
    reaches a replica, weights add up) run only when nothing else was found, since they mostly
    restate earlier problems.
    """

    def __init__(self, s: Scenario, file: str, base_dir: Path, known: int = 0) -> None:
        self.s, self.file, self.base_dir = s, file, base_dir
        self.known = known  # problems found before these checks
        self.problems: list[ScenarioError] = []
        self.misshapen: set[tuple[str, str | None]] = set()  # (model, variant) whose layers do not chain

    def fail(self, path: str, msg: str) -> None:
        self.problems.append(ScenarioError(msg, file=self.file, path=path))

    def run(self) -> None:
        self.load_profiles()
        self.check_models()
        self.check_links()
        self.check_services()
        used: dict[tuple[str, str], int] = {}  # devices per (site, hardware): deployment and jobs together
        if self.s.deployment is not None:
            self.check_deployment(used)
        self.check_jobs(used)
        if self.s.deployment is not None:
            if not self.known and not self.problems:
                self._check_reachability()
                if self.s.deployment.routing == "weighted":
                    self._check_weights()

    def _path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.base_dir / p

    def _profile(self, rel: str, path: str) -> Any:
        p = self._path(rel)
        if not p.is_file():
            return self.fail(path, f"profile file not found: {p}")
        try:
            return load_profile_cached(p)
        except (OSError, ValueError) as exc:
            return self.fail(path, f"not a valid kernel profile: {exc}")

    def load_profiles(self) -> None:
        """Load each hardware type's measured profile once, here at the boundary."""
        for name, hw in self.s.hardware.items():
            if hw.profile is not None:
                hw._measured = self._profile(hw.profile, f"hardware.{name}.profile")

    def check_models(self) -> None:
        for name, m in self.s.models.items():
            if is_llm(m):
                continue  # its shape is a handful of integers, checked by the schema
            if not self._shapes(m.layers, f"models.{name}.layers"):
                self.misshapen.add((name, None))
            for vname, v in m.variants.items():
                if v.layers is not None and not self._shapes(v.layers, f"models.{name}.variants.{vname}.layers"):
                    self.misshapen.add((name, vname))

    def _shapes(self, layers: list, path: str) -> bool:
        try:
            layer_costs(layers)
        except LayerShapeError as exc:
            self.fail(f"{path}[{exc.index}]", exc.detail)
            return False
        return True

    def check_links(self) -> None:
        seen: set[frozenset[str]] = set()
        for i, link in enumerate(self.s.links):
            a, b = link.between
            if a == b:
                self.fail(f"links[{i}].between", f"a link joins two different sites, got {a!r} twice")
                continue
            pair = frozenset((a, b))
            if pair in seen:
                self.fail(f"links[{i}].between", f"a second link between {a!r} and {b!r}; give one link per pair")
            seen.add(pair)

    def check_services(self) -> None:
        for name, svc in self.s.services.items():
            path = f"services.{name}"
            model = self.s.models.get(svc.model)
            if svc.tokens is not None and svc.tokens.trace is not None:  # first: the budget check reads its rows
                svc.tokens.trace._pairs = self._read_token_trace(svc.tokens.trace, f"{path}.tokens.trace.file")
            if model is not None:
                self._check_kind(name, svc, model)
            if svc.payload is not None:
                svc.payload._codec = self._codec(svc.payload, f"{path}.payload")
            for i, d in enumerate(svc.demand):
                dpath = f"{path}.demand[{i}]"
                kind = d.arrival.kind
                if d.rate_rps is None and kind in ("poisson", "constant", "diurnal"):
                    self.fail(f"{dpath}.rate_rps", f"required for {kind} arrivals (the mean rate, requests per second)")
                if isinstance(d.arrival, Trace):
                    d.arrival._times_s = self._read_trace(d.arrival, f"{dpath}.arrival.file")

    def _check_kind(self, name: str, svc: Any, model: Any) -> None:
        """An LLM service has tokens and token targets; any other service has neither."""
        path = f"services.{name}"
        if is_llm(model):
            if svc.tokens is None:
                self.fail(f"{path}.tokens", f"required: model {svc.model!r} is an LLM (kind: llm); give prompt and "
                                            f"output token distributions, e.g. {{prompt: {{dist: fixed, n: 512}}, "
                                            f"output: {{dist: fixed, n: 128}}}}, or a trace")
            for key in ("ttft", "tpot"):
                if getattr(svc.slo, key) is None:
                    self.fail(f"{path}.slo.{key}", f"required for an LLM service: {{percentile: 99, latency_ms: ...}}")
            for key, why in (("service_time", "its iteration times come from the model"),
                             ("payload", "its requests are token ids"),
                             ("max_queue", "admission waits for KV-cache blocks instead")):
                if getattr(svc, key) is not None:
                    self.fail(f"{path}.{key}", f"not for an LLM service ({why})")
            if svc.batching.max_batch != 1 or svc.batching.max_wait_ms or svc.batching.unused_wait_ms:
                self.fail(f"{path}.batching", "not for an LLM service: its replicas batch by iteration (scheduler:)")
            self._check_budget(name, svc)
            if svc.buckets:
                self._check_buckets(name, svc)
        else:
            if svc.slo.latency_ms is None:
                self.fail(f"{path}.slo.latency_ms", "required key is missing")
            for key in ("ttft", "tpot"):
                if getattr(svc.slo, key) is not None:
                    self.fail(f"{path}.slo.{key}", f"only for an LLM service (model {svc.model!r} is not kind: llm)")
            for key in ("tokens", "scheduler", "buckets"):
                if getattr(svc, key) is not None:
                    self.fail(f"{path}.{key}", f"only for an LLM service (model {svc.model!r} is not kind: llm)")

    def _check_buckets(self, name: str, svc: Any) -> None:
        """What `plan` needs to split the service into buckets: a rate on every demand line to split, and
        bucket names (`<service>.p<lo>-<hi>`, `planner.buckets`) no other service has."""
        for i, d in enumerate(svc.demand):
            if d.rate_rps is None:
                self.fail(f"services.{name}.demand[{i}].rate_rps", "required with buckets: plan splits each demand "
                                                                   "line's rate over the buckets")
        for lo, hi in bucket_ranges(svc.buckets):
            bucket = bucket_service(name, lo, hi)
            if bucket in self.s.services:
                self.fail(f"services.{bucket}", f"this name is the one plan gives the bucket of prompts of {lo}"
                                                f"{'-' + str(hi) if hi is not None else ' or more'} tokens of {name}; "
                                                f"rename the service")

    def _check_budget(self, name: str, svc: Any) -> None:
        sched = svc.scheduler_or_default
        if svc.tokens is None or sched.chunked_prefill:
            return
        longest, _ = svc.tokens.max_tokens()
        if longest is None and svc.tokens.trace is not None:
            return  # an unreadable trace: said where it is read
        if longest is None or longest > sched.max_batched_tokens:
            said = "unbounded (give the distribution a max)" if longest is None else f"up to {longest}"
            self.fail(f"services.{name}.scheduler.max_batched_tokens",
                      f"{sched.max_batched_tokens} tokens per iteration, but prompts are {said} tokens and "
                      f"chunked_prefill is off: a longer prompt could never be scheduled")

    def _read_token_trace(self, trace: TokenTrace, path: str) -> tuple[tuple[int, int], ...]:
        try:
            return _token_pairs(trace, self._path(trace.file))
        except _TraceProblem as exc:
            self.fail(path, str(exc))
            return ()

    def _codec(self, payload: Any, path: str) -> Codec | None:
        rel = payload.profile if payload.profile is not None else str(reference_profile_path())
        profile = self._profile(rel, f"{path}.profile")
        if profile is None:
            return None
        try:
            return codec_model(profile, payload.codec, payload.level, payload.data)
        except ValueError as exc:
            return self.fail(path, str(exc))

    def _read_trace(self, trace: Trace, path: str) -> tuple[float, ...]:
        try:
            return _trace_times(trace, self._path(trace.file))
        except _TraceProblem as exc:
            self.fail(path, str(exc))
            return ()

    def check_jobs(self, used: dict[tuple[str, str], int]) -> None:
        """Each job's model, placement and sync can run: devices within the site's capacity (beside
        the deployment's), nodes that can talk, a batch that splits over the devices."""
        times_fn = BatchTimesCache()
        component: dict[str, Any] | None = None
        for name, job in self.s.jobs.items():
            path = f"jobs.{name}"
            model = self.s.models.get(job.model)
            pl = job.placement
            hw = self.s.hardware.get(pl.hardware)
            if model is None or hw is None or pl.site not in self.s.sites or job.variant not in model.variants:
                continue  # a reference problem, reported already
            if is_llm(model):
                self.fail(f"{path}.model", f"training jobs take layer-list models; {job.model!r} is kind: llm")
                continue
            total = job.devices
            for where, p in [("placement", pl), *((f"also[{i}]", p) for i, p in enumerate(job.also))]:
                if p.site not in self.s.sites:
                    continue  # a reference problem, reported already
                if p.hardware != pl.hardware:
                    self.fail(f"{path}.{where}.hardware", f"a job spans sites on one hardware type: {p.hardware!r} "
                                                          f"is not the placement's {pl.hardware!r}")
                    continue
                self._count_devices(used, f"{path}.{where}.count", p, p.count)
                per_node = min(p.per_node, p.count)
                if p.count % per_node:
                    self.fail(f"{path}.{where}.per_node", f"{p.count} devices do not fill nodes of {per_node}")
                if per_node > 1 and hw.interconnect_gbps is None:
                    self.fail(f"{path}.{where}.per_node", f"{per_node} devices to a node need the device-to-device "
                                                          f"bandwidth hardware.{pl.hardware}.interconnect_gbps")
                if p.count > per_node and self.s.sites[p.site].fabric_gbps is None:
                    self.fail(f"{path}.{where}.count", f"{p.count // per_node} nodes need sites.{p.site}.fabric_gbps "
                                                       "(gigabits per second per node between them)")
            if job.also:
                if job.sync.kind == "parameter-server":
                    self.fail(f"{path}.also", "a job across sites combines its gradients by all-reduce: a "
                                              "parameter-server job stays at one site")
                sites = [p.site for p in job.placements]
                if len(set(sites)) != len(sites):
                    self.fail(f"{path}.also", f"each site once: {', '.join(sites)}")
                if component is None:
                    component = _components(self.s.sites, (link.between for link in self.s.links))
                for i, p in enumerate(job.also):
                    if p.site in component and component[p.site] != component.get(pl.site):
                        self.fail(f"{path}.also[{i}].site", f"no network path from {pl.site!r} to {p.site!r}")
            if job.global_batch % total:
                self.fail(f"{path}.global_batch", f"{job.global_batch} does not split over {total} devices "
                                                  f"(a multiple of {total} is needed)")
            shaped = not {(job.model, None), (job.model, job.variant)} & self.misshapen  # else reported already
            try:
                if shaped:
                    times_fn(model, model.variants[job.variant], hw, 1)
            except UnsupportedPrecision as exc:
                self.fail(f"{path}.variant", str(exc))
            if shaped and not job.global_batch % total:
                from lepton_sim.servicetime.training import memory_bytes

                need = memory_bytes(model, model.variants[job.variant], job.global_batch // total) / 1e9
                if need > hw.memory_gb:
                    self.fail(f"{path}.global_batch", f"{job.global_batch // total} samples per device need about "
                                                      f"{need:.1f} GB (optimizer state and activations, modelled); "
                                                      f"{pl.hardware} has {hw.memory_gb:g} GB: use more devices")
            sync = job.sync
            if sync.kind == "parameter-server":
                site = sync.site or pl.site
                shw = self.s.hardware.get(sync.hardware or "")
                if shw is None or site not in self.s.sites:
                    continue
                self._count_devices(used, f"{path}.sync.servers", JobPlacement(site=site, hardware=sync.hardware or "",
                                                                                count=sync.servers or 1), sync.servers or 0)
                if site != pl.site:
                    if component is None:
                        component = _components(self.s.sites, (link.between for link in self.s.links))
                    if component[pl.site] != component[site]:
                        self.fail(f"{path}.sync.site", f"no network path from {pl.site!r} to the servers at {site!r}")
                elif self.s.sites[site].fabric_gbps is None:
                    self.fail(f"{path}.sync", f"servers at the job's site reach its nodes over "
                                              f"sites.{site}.fabric_gbps, which is not given")

    def check_deployment(self, used: dict[tuple[str, str], int]) -> None:
        dep = self.s.deployment
        assert dep is not None
        times_fn = BatchTimesCache()  # identical lines share one computation (errors are not cached)
        for i, r in enumerate(dep.replicas):
            path = f"deployment.replicas[{i}]"
            if r.weights is not None and dep.routing != "weighted":
                self.fail(f"{path}.weights", f"weights apply only to routing: weighted (routing is {dep.routing})")
            svc = self.s.services.get(r.service)
            model = self.s.models.get(svc.model) if svc is not None else None
            hw = self.s.hardware.get(r.hardware)
            if model is None or hw is None or r.site not in self.s.sites or r.variant not in model.variants:
                continue  # a reference problem, reported already
            assert svc is not None
            variant = model.variants[r.variant]
            if is_llm(model):
                self._check_llm_line(path, r, svc, model, variant, hw)
                self._count_devices(used, path, r, r.count * r.tensor_parallel)
                continue
            for key in ("tensor_parallel", "prompt_tokens"):
                if getattr(r, key) != Replicas.model_fields[key].default:
                    self.fail(f"{path}.{key}", f"only for LLM services (model {svc.model!r} is not kind: llm)")
            shaped = not {(svc.model, None), (svc.model, r.variant)} & self.misshapen  # else reported already
            try:
                if shaped and svc.service_time is None and not (hw.profile and hw.measured is None):
                    times_fn(model, variant, hw, svc.batching.max_batch)
            except UnsupportedPrecision as exc:
                self.fail(f"{path}.variant", str(exc))
            need_gb = times_fn.weight_bytes(model, variant) / 1e9 if shaped else 0.0
            if need_gb > hw.memory_gb:
                self.fail(f"{path}.variant", f"{r.variant} of {svc.model} needs {need_gb:.2f} GB of weights; {r.hardware} has {hw.memory_gb:g} GB")
            self._count_devices(used, path, r, r.count)

    def _count_devices(self, used: dict[tuple[str, str], int], path: str, r: Any, n: int) -> None:
        key = (r.site, r.hardware)
        before = used.get(key, 0)
        used[key] = before + n
        cap = self.s.sites[r.site].capacity.get(r.hardware, 0)
        if used[key] > cap and before <= cap:  # said once per (site, hardware), at the line that overflows
            self.fail(f"{path}.count", f"site {r.site!r} holds {cap} of {r.hardware!r} (sites.{r.site}.capacity) but the deployment uses {used[key]}")

    def _check_llm_line(self, path: str, r: Any, svc: Any, model: Any, variant: Any, hw: Any) -> None:
        """Weights and the longest request's KV cache fit the replica's devices; the precision runs there."""
        from lepton_sim.servicetime.llm_replica import replica_problem

        tokens = svc.tokens
        if r.prompt_tokens is not None and tokens is not None:
            tokens = _PromptCapped(tokens, r.prompt_tokens[1])  # its longest request is the range's
        why = replica_problem(model, variant, hw, r.tensor_parallel, svc.scheduler_or_default, tokens)
        if why is not None:
            self.fail(f"{path}.{why[0]}", why[1])

    def _check_reachability(self) -> None:
        """Every demand site is in the same connected part of the network as a replica of its service.

        Links are undirected, so a path exists exactly when both sites are in one connected
        component: the components are found once (union-find over the links), not one search per
        demand and pool.
        """
        assert self.s.deployment is not None
        component = _components(self.s.sites, (link.between for link in self.s.links))
        pools: dict[str, set[str]] = {}
        lines: dict[str, list[Replicas]] = {}
        for r in self.s.deployment.replicas:
            pools.setdefault(r.service, set()).add(r.site)
            lines.setdefault(r.service, []).append(r)
        for name, svc in self.s.services.items():
            sites = pools.get(name)
            if not sites:
                self.fail(f"services.{name}", "the deployment has no replicas of this service")
                continue
            if any(r.prompt_tokens is not None for r in lines[name]):
                self._check_prompt_ranges(name, svc, lines[name], component)
                continue
            reached = {component[p] for p in sites}
            listed: str | None = None
            for i, d in enumerate(svc.demand):
                if component[d.site] not in reached:
                    listed = listed if listed is not None else ", ".join(sorted(sites))
                    self.fail(f"services.{name}.demand[{i}].site", f"site {d.site!r} has no network path to any replica of {name} (replicas at: {listed})")

    def _check_prompt_ranges(self, name: str, svc: Any, lines: list[Replicas], component: dict[str, str]) -> None:
        """Every prompt length the service's tokens can draw has a pool serving it that each demand site reaches."""
        lo, hi = _prompt_support(svc.tokens)
        for a, b in prompt_intervals(lines):
            if (b is not None and b < lo) or (hi is not None and a > hi):
                continue  # no request has a prompt there
            what = _prompts(max(a, lo), b if hi is None else hi if b is None else min(b, hi))
            sites = {r.site for r in lines if r.serves_prompt(a, b)}
            if not sites:
                self.fail(f"services.{name}", f"{what} have no pool: the deployment's prompt_tokens ranges leave them out")
                continue
            reached = {component[p] for p in sites}
            for i, d in enumerate(svc.demand):
                if component[d.site] not in reached:
                    self.fail(f"services.{name}.demand[{i}].site", f"site {d.site!r} has no network path to a pool "
                                                                  f"serving {what} (at: {', '.join(sorted(sites))})")

    def _check_weights(self) -> None:
        """Each demand site's weights over its service's pools add up to 1.

        Each service's totals per site are summed once over its lines, in line order (the order of
        the additions, and so the float total, is the same as summing line by line per demand).
        """
        assert self.s.deployment is not None
        totals: dict[str, dict[str, float]] = {}
        ranged: dict[str, list[Replicas]] = {}
        for r in self.s.deployment.replicas:
            per_site = totals.setdefault(r.service, {})
            for site, w in (r.weights or {}).items():
                per_site[site] = per_site.get(site, 0) + w
            ranged.setdefault(r.service, []).append(r)
        for name, svc in self.s.services.items():
            if any(r.prompt_tokens is not None for r in ranged.get(name, ())):
                self._check_weights_by_prompt(name, svc, ranged[name])
                continue
            per_site = totals.get(name, {})
            for i, d in enumerate(svc.demand):
                total = per_site.get(d.site, 0)
                if abs(total - 1.0) > 1e-6:
                    self.fail(f"services.{name}.demand[{i}]", f"weighted routing: the weights for site {d.site!r} over the pools of {name} add up to {total:.6g}, expected 1")

    def _check_weights_by_prompt(self, name: str, svc: Any, lines: list[Replicas]) -> None:
        """Weighted routing over pools serving prompt ranges: each site's weights add up to 1 over the pools
        serving each interval of prompt lengths that requests can have."""
        lo, hi = _prompt_support(svc.tokens)
        for a, b in prompt_intervals(lines):
            if (b is not None and b < lo) or (hi is not None and a > hi):
                continue
            serving = [r for r in lines if r.serves_prompt(a, b)]
            for i, d in enumerate(svc.demand):
                total = sum((r.weights or {}).get(d.site, 0.0) for r in serving)
                if abs(total - 1.0) > 1e-6:
                    what = _prompts(max(a, lo), b if hi is None else hi if b is None else min(b, hi))
                    self.fail(f"services.{name}.demand[{i}]", f"weighted routing: the weights for site {d.site!r} over "
                                                              f"the pools of {name} serving {what} add up to "
                                                              f"{total:.6g}, expected 1")


class _PromptCapped:
    """An LLM service's tokens as a pool serving prompts up to `hi` tokens sees them (`max_tokens` only)."""

    def __init__(self, tokens: Any, hi: int | None) -> None:
        self.tokens, self.hi = tokens, hi

    def max_tokens(self) -> tuple[int | None, int | None]:
        p, o = self.tokens.max_tokens()
        if self.hi is not None:
            p = self.hi if p is None else min(p, self.hi)
        return p, o


def _prompts(lo: int, hi: int | None) -> str:
    return f"prompts of {lo}-{hi} tokens" if hi is not None else f"prompts of {lo} tokens or more"


def _prompt_support(tokens: Any) -> tuple[int, int | None]:
    """The smallest and largest prompt (None: unbounded) an LLM service's tokens can draw."""
    if tokens is None:
        return 1, None
    if tokens.trace is not None:
        ps = [p for p, _ in tokens.trace.pairs]
        return (min(ps), max(ps)) if ps else (1, None)
    d = tokens.prompt
    if isinstance(d, FixedTokens):
        return d.n, d.n
    if isinstance(d, UniformTokens):
        return d.low, d.high
    return d.min, d.max


def _components(nodes: typing.Iterable[str], edges: typing.Iterable[tuple[str, str]]) -> dict[str, str]:
    """Node -> a representative of its connected component (union-find with path halving)."""
    parent = {n: n for n in nodes}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
    return {n: root(n) for n in parent}


class _TraceProblem(ValueError):
    """Why a trace file cannot give arrival times (or token counts)."""


def _csv_rows(p: Path) -> list[list[str]]:
    """A trace file's rows, or why it cannot be read."""
    if not p.is_file():
        raise _TraceProblem(f"trace file not found: {p}")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise _TraceProblem(f"cannot read trace file {p}: {exc}") from None
    return rows


def _column(rows: list[list[str]], col: str | int, p: Path) -> int:
    if isinstance(col, int):
        return col
    if not rows or col not in rows[0]:
        raise _TraceProblem(f"trace file {p} has no column {col!r} in its header")
    return rows[0].index(col)


def _token_pairs(trace: TokenTrace, p: Path) -> tuple[tuple[int, int], ...]:
    """(prompt, output) token counts per row of a token trace: positive integers, at least one row."""
    rows = _csv_rows(p)
    named = isinstance(trace.prompt_column, str) or isinstance(trace.output_column, str)
    pc, oc = _column(rows, trace.prompt_column, p), _column(rows, trace.output_column, p)
    pairs: list[tuple[int, int]] = []
    for n, row in enumerate(rows[1 if named else 0:], start=2 if named else 1):
        if not row or not "".join(row).strip():
            continue
        try:
            pair = (int(row[pc]), int(row[oc]))
        except (IndexError, ValueError):
            if n == 1:
                continue  # a header line
            raise _TraceProblem(f"trace file {p} line {n}: expected whole token counts in columns {pc} and {oc}") from None
        if min(pair) < 1:
            raise _TraceProblem(f"trace file {p} line {n}: token counts must be at least 1")
        pairs.append(pair)
    if not pairs:
        raise _TraceProblem(f"trace file {p} holds no token counts")
    return tuple(pairs)


def _trace_times(trace: Trace, p: Path) -> tuple[float, ...]:
    """The timestamps (seconds) of a trace file's column: finite, >= 0, non-decreasing, at least 2."""
    rows = _csv_rows(p)
    col, start = _column(rows, trace.column, p), int(isinstance(trace.column, str))
    times: list[float] = []
    for n, row in enumerate(rows[start:], start=start + 1):
        if not row or not "".join(row).strip():
            continue
        try:
            t = float(row[col])
        except (IndexError, ValueError):
            if n == 1 and start == 0:
                continue  # a header line
            raise _TraceProblem(f"trace file {p} line {n}: expected a timestamp in seconds in column {col}") from None
        if not math.isfinite(t) or t < 0 or (times and t < times[-1]):
            raise _TraceProblem(f"trace file {p} line {n}: timestamps must be finite, >= 0 and non-decreasing")
        times.append(t)
    if len(times) < 2:
        raise _TraceProblem(f"trace file {p} holds fewer than 2 timestamps")
    if times[-1] == times[0]:  # no span: no rate to scale to, and a loop would repeat one instant forever
        raise _TraceProblem(f"trace file {p}: every timestamp is {times[0]:g} s; a trace needs two different times")
    return tuple(times)
