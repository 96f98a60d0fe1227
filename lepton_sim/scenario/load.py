"""Read a scenario file: parse YAML, resolve `from:` entries, validate once, check cross-references.

This is the only boundary where scenario input is checked. Every problem becomes one
`ScenarioError` naming the file, the key path (``services.detect.demand[1].rate_rps``) and what
was expected; past this point the code trusts the typed `Scenario`.
"""
from __future__ import annotations

import copy
import csv
import math
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from pydantic import BaseModel, ValidationError

from lepton_sim.catalogue import THIS_MACHINE, hardware_entry, hardware_names
from lepton_sim.catalogue.zoo import zoo_model, zoo_names
from lepton_sim.errors import ScenarioError
from lepton_sim.layers import LayerShapeError, layer_costs
from lepton_sim.profiles import Codec, codec_model, digits_variants, load_profile_cached, reference_profile_path
from lepton_sim.scenario.schema import Scenario, Trace
from lepton_sim.servicetime import UnsupportedPrecision, batch_times, weight_bytes

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
    """Parse YAML strictly: duplicate keys are errors, syntax errors carry the line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ScenarioError(f"malformed YAML: {where}{exc.problem or exc}", file=file) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"malformed YAML: {exc}", file=file) from None


def parse_scenario(data: Any, *, file: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Validate an already-parsed scenario mapping (used by sweeps, which edit the mapping first)."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"expected a mapping of scenario keys at the top, got {_kind(data)}", file=file)
    raw = _resolve_entries(copy.deepcopy(dict(data)), file)
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc, raw, file) from None
    scenario = _name_entries(scenario)
    _Checker(scenario, file, base_dir or Path.cwd()).run()
    return scenario


# --- YAML ------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
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


# --- from: catalogue and zoo entries -------------------------------------------------------


def _resolve_entries(raw: dict, file: str) -> dict:
    """Replace `from:` references with the catalogue/zoo entry overlaid by the scenario's keys."""
    hardware = raw.get("hardware")
    if isinstance(hardware, dict):
        for name, entry in hardware.items():
            if isinstance(entry, dict) and "from" in entry:
                hardware[name] = _overlay_hardware(entry, f"hardware.{name}", file)
    models = raw.get("models")
    if isinstance(models, dict):
        for name, entry in models.items():
            if isinstance(entry, dict) and "from" in entry:
                models[name] = _overlay_model(entry, f"models.{name}", file)
    return raw


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


# --- pydantic errors -> one ScenarioError ---------------------------------------------------


def _first_error(exc: ValidationError, raw: Any, file: str) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    loc = _clean_loc(err["loc"], raw)
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        parent, key = loc[:-1], loc[-1]
        allowed = _allowed_keys(parent, raw)
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return ScenarioError(f"unknown key {key!r}{hint}", file=file, path=_fmt_loc(loc))
    if kind == "missing":
        return ScenarioError("required key is missing", file=file, path=_fmt_loc(loc))
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return ScenarioError(
            f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} {ctx.get('tag')!r}; expected one of: "
            f"{ctx.get('expected_tags')}",
            file=file, path=_fmt_loc(loc),
        )
    if kind == "union_tag_not_found":
        ctx = err.get("ctx", {})
        return ScenarioError(f"missing {ctx.get('discriminator', 'kind')} key", file=file, path=_fmt_loc(loc))
    got = err.get("input")
    got_txt = "" if kind.startswith("value_error") or isinstance(got, (dict, list)) else f", got {got!r}"
    msg = msg.removeprefix("Value error, ")
    return ScenarioError(f"{_lower_first(msg)}{got_txt}", file=file, path=_fmt_loc(loc))


def _clean_loc(loc: tuple, raw: Any) -> tuple:
    """Drop discriminated-union tags (e.g. 'mmpp') that pydantic inserts into error locations."""
    out: list = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node:
            if part in {node.get("kind"), node.get("op"), node.get("dist")}:
                continue
        if part == "[key]":
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


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


# --- cross-references -----------------------------------------------------------------------


class _Checker:
    """Checks that need the whole scenario: references, shapes, capacity, connectivity."""

    def __init__(self, s: Scenario, file: str, base_dir: Path) -> None:
        self.s, self.file, self.base_dir = s, file, base_dir

    def fail(self, path: str, msg: str) -> typing.NoReturn:
        raise ScenarioError(msg, file=self.file, path=path)

    def run(self) -> None:
        self.load_profiles()
        self.check_models()
        self.check_links()
        self.check_services()
        self.check_failures()
        if self.s.deployment is not None:
            self.check_deployment()

    def _path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.base_dir / p

    def _profile(self, rel: str, path: str) -> Any:
        p = self._path(rel)
        if not p.is_file():
            self.fail(path, f"profile file not found: {p}")
        try:
            return load_profile_cached(p)
        except (OSError, ValueError) as exc:
            self.fail(path, f"not a valid kernel profile: {exc}")

    def load_profiles(self) -> None:
        """Load each hardware type's measured profile once, here at the boundary."""
        for name, hw in self.s.hardware.items():
            if hw.profile is not None:
                hw._measured = self._profile(hw.profile, f"hardware.{name}.profile")

    def check_failures(self) -> None:
        links = {f"{a}--{b}" for a, b in (link.between for link in self.s.links)}
        links |= {f"{b}--{a}" for a, b in (link.between for link in self.s.links)}
        for name in self.s.failures:
            if name not in self.s.hardware and name not in links:
                known = ", ".join([*self.s.hardware, *(f"{a}--{b}" for a, b in (k.between for k in self.s.links))])
                self.fail(f"failures.{name}", f"not a hardware type or a link (site--site); known: {known}")

    def check_models(self) -> None:
        for name, m in self.s.models.items():
            self._shapes(m.layers, f"models.{name}.layers")
            for vname, v in m.variants.items():
                if v.layers is not None:
                    self._shapes(v.layers, f"models.{name}.variants.{vname}.layers")

    def _shapes(self, layers: list, path: str) -> None:
        try:
            layer_costs(layers)
        except LayerShapeError as exc:
            self.fail(f"{path}[{exc.index}]", exc.detail)

    def check_links(self) -> None:
        seen: set[frozenset[str]] = set()
        for i, link in enumerate(self.s.links):
            a, b = link.between
            for j, site in enumerate((a, b)):
                if site not in self.s.sites:
                    self.fail(f"links[{i}].between[{j}]", f"unknown site {site!r}; sites are: {_names(self.s.sites)}")
            if a == b:
                self.fail(f"links[{i}].between", f"a link joins two different sites, got {a!r} twice")
            pair = frozenset((a, b))
            if pair in seen:
                self.fail(f"links[{i}].between", f"a second link between {a!r} and {b!r}; give one link per pair")
            seen.add(pair)

    def check_services(self) -> None:
        for name, svc in self.s.services.items():
            path = f"services.{name}"
            if svc.model not in self.s.models:
                self.fail(f"{path}.model", f"unknown model {svc.model!r}; models are: {_names(self.s.models)}")
            model = self.s.models[svc.model]
            for i, v in enumerate(svc.variants or []):
                if v not in model.variants:
                    self.fail(f"{path}.variants[{i}]", f"model {svc.model!r} has no variant {v!r}; it has: {_names(model.variants)}")
            if svc.payload is not None:
                svc.payload._codec = self._codec(svc.payload, f"{path}.payload")
            if svc.batching.max_wait_ms > 0 and svc.batching.max_batch == 1:
                self.fail(f"{path}.batching.max_wait_ms", "waiting for a batch needs max_batch > 1")
            for i, d in enumerate(svc.demand):
                dpath = f"{path}.demand[{i}]"
                if d.site not in self.s.sites:
                    self.fail(f"{dpath}.site", f"unknown site {d.site!r}; sites are: {_names(self.s.sites)}")
                kind = d.arrival.kind
                if d.rate_rps is None and kind in ("poisson", "constant", "diurnal"):
                    self.fail(f"{dpath}.rate_rps", f"required for {kind} arrivals (the mean rate, requests per second)")
                if isinstance(d.arrival, Trace):
                    d.arrival._times_s = self._read_trace(d.arrival, f"{dpath}.arrival.file")

    def _codec(self, payload: Any, path: str) -> Codec:
        rel = payload.profile if payload.profile is not None else str(reference_profile_path())
        profile = self._profile(rel, f"{path}.profile")
        try:
            return codec_model(profile, payload.codec, payload.level, payload.data)
        except ValueError as exc:
            self.fail(path, str(exc))

    def _read_trace(self, trace: Trace, path: str) -> tuple[float, ...]:
        p = Path(trace.file)
        p = p if p.is_absolute() else self.base_dir / p
        if not p.is_file():
            self.fail(path, f"trace file not found: {p}")
        times: list[float] = []
        try:
            with p.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError) as exc:
            self.fail(path, f"cannot read trace file {p}: {exc}")
        col = trace.column
        start = 0
        if isinstance(col, str):
            if not rows or col not in rows[0]:
                self.fail(path, f"trace file {p} has no column {col!r} in its header")
            col, start = rows[0].index(col), 1
        for n, row in enumerate(rows[start:], start=start + 1):
            if not row or not "".join(row).strip():
                continue
            try:
                t = float(row[col])
            except (IndexError, ValueError):
                if n == 1 and start == 0:
                    continue  # a header line
                self.fail(path, f"trace file {p} line {n}: expected a timestamp in seconds in column {col}")
            if not math.isfinite(t) or t < 0 or (times and t < times[-1]):
                self.fail(path, f"trace file {p} line {n}: timestamps must be finite, >= 0 and non-decreasing")
            times.append(t)
        if len(times) < 2:
            self.fail(path, f"trace file {p} holds fewer than 2 timestamps")
        return tuple(times)

    def check_deployment(self) -> None:
        dep = self.s.deployment
        assert dep is not None
        used: dict[tuple[str, str], int] = {}
        for i, r in enumerate(dep.replicas):
            path = f"deployment.replicas[{i}]"
            if r.service not in self.s.services:
                self.fail(f"{path}.service", f"unknown service {r.service!r}; services are: {_names(self.s.services)}")
            if r.site not in self.s.sites:
                self.fail(f"{path}.site", f"unknown site {r.site!r}; sites are: {_names(self.s.sites)}")
            if r.hardware not in self.s.hardware:
                self.fail(f"{path}.hardware", f"unknown hardware type {r.hardware!r}; types are: {_names(self.s.hardware)}")
            svc = self.s.services[r.service]
            model = self.s.models[svc.model]
            if r.variant not in model.variants:
                self.fail(f"{path}.variant", f"model {svc.model!r} has no variant {r.variant!r}; it has: {_names(model.variants)}")
            if svc.variants is not None and r.variant not in svc.variants:
                self.fail(f"{path}.variant", f"variant {r.variant!r} is not among services.{r.service}.variants {svc.variants}")
            hw = self.s.hardware[r.hardware]
            variant = model.variants[r.variant]
            try:
                if svc.service_time is None:
                    batch_times(model, variant, hw, svc.batching.max_batch)
            except UnsupportedPrecision as exc:
                self.fail(f"{path}.variant", str(exc))
            need_gb = weight_bytes(model, variant) / 1e9
            if need_gb > hw.memory_gb:
                self.fail(f"{path}.variant", f"{r.variant} of {svc.model} needs {need_gb:.2f} GB of weights; {r.hardware} has {hw.memory_gb:g} GB")
            key = (r.site, r.hardware)
            used[key] = used.get(key, 0) + r.count
            cap = self.s.sites[r.site].capacity.get(r.hardware, 0)
            if used[key] > cap:
                self.fail(f"{path}.count", f"site {r.site!r} holds {cap} of {r.hardware!r} (sites.{r.site}.capacity) but the deployment uses {used[key]}")
            if r.weights is not None and dep.routing != "weighted":
                self.fail(f"{path}.weights", f"weights apply only to routing: weighted (routing is {dep.routing})")
        self._check_reachability()
        if dep.routing == "weighted":
            self._check_weights()

    def _check_reachability(self) -> None:
        graph = nx.Graph()
        graph.add_nodes_from(self.s.sites)
        graph.add_edges_from(link.between for link in self.s.links)
        assert self.s.deployment is not None
        for name, svc in self.s.services.items():
            pools = sorted({r.site for r in self.s.deployment.replicas if r.service == name})
            if not pools:
                self.fail(f"services.{name}", "the deployment has no replicas of this service")
            for i, d in enumerate(svc.demand):
                if not any(nx.has_path(graph, d.site, p) for p in pools):
                    self.fail(f"services.{name}.demand[{i}].site", f"site {d.site!r} has no network path to any replica of {name} (replicas at: {', '.join(pools)})")

    def _check_weights(self) -> None:
        assert self.s.deployment is not None
        for name, svc in self.s.services.items():
            for i, d in enumerate(svc.demand):
                total = sum(
                    (r.weights or {}).get(d.site, 0.0) for r in self.s.deployment.replicas if r.service == name
                )
                if abs(total - 1.0) > 1e-6:
                    self.fail(f"services.{name}.demand[{i}]", f"weighted routing: the weights for site {d.site!r} over the pools of {name} add up to {total:.6g}, expected 1")


def _names(d: Mapping[str, Any]) -> str:
    return ", ".join(d) or "(none)"
