"""Finding, merging and validating presets.

Precedence, lowest first: schema defaults < ``base:`` chain (the farthest ancestor first) < the preset
file < ``--set key.path=value`` overrides. Everything is merged as plain data and validated once, so an
override meets exactly the checks a file does. Mappings merge key by key; lists are replaced whole.
"""

from __future__ import annotations

import copy
import difflib
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, get_args

import yaml
from pydantic import BaseModel, ValidationError

from tadcli.config.schema import Preset
from tadcli.errors import PresetError
from tadcli.io.paths import check_input_file

PRESET_SUFFIX = ".yaml"


@dataclass(frozen=True)
class PresetSource:
    """Where one layer of a preset came from: a file, or the command-line overrides."""

    label: str  # what the user sees in an error: "presets/giant-768.yaml" or "--set train.epochs=5"
    data: dict[str, Any]


def _shipped_dir() -> Path:
    """The shipped presets: package data once installed, ``presets/`` beside ``tadcli/`` in a bare checkout."""
    try:
        return Path(str(resources.files("tadcli.presets")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "presets"


def shipped_preset_names() -> list[str]:
    """Names of the presets shipped with tad, sorted."""
    return sorted(p.stem for p in _shipped_dir().glob(f"*{PRESET_SUFFIX}"))


def _resolve_file(name_or_path: str, relative_to: Optional[Path] = None) -> Path:
    """A shipped preset name, or a path to a YAML file (relative paths tried next to the child first)."""
    candidates = []
    as_path = Path(name_or_path)
    if as_path.suffix in (".yaml", ".yml"):
        if relative_to is not None and not as_path.is_absolute():
            candidates.append(relative_to / as_path)
        candidates.append(as_path)
    else:
        if relative_to is not None:
            candidates.append(relative_to / f"{name_or_path}{PRESET_SUFFIX}")
        candidates.append(_shipped_dir() / f"{name_or_path}{PRESET_SUFFIX}")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if as_path.suffix in (".yaml", ".yml"):
        check_input_file(candidates[-1], "preset file")  # says what is wrong with the path (missing, a folder)
    names = shipped_preset_names()
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise PresetError(f"unknown preset '{name_or_path}'{hint}; available: {', '.join(names)}")


def _display(path: Path) -> str:
    shipped = _shipped_dir()
    try:
        return f"presets/{path.resolve().relative_to(shipped.resolve())}"
    except ValueError:
        return str(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping a preset file holds, a copy of its own (callers change it). The same text is parsed once: a
    search over suggested configurations loads the same preset a hundred times (reading it is cheap)."""
    return copy.deepcopy(_parsed_yaml(_display(path), path.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=64)
def _parsed_yaml(label: str, text: str) -> dict[str, Any]:
    """:func:`_read_yaml`'s parse of ``text``, read from the file shown as ``label``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise PresetError(f"{label}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PresetError(f"{label}: a preset must be a mapping of sections, got {type(data).__name__}")
    return data


def _chain(name_or_path: str) -> list[PresetSource]:
    """The preset and its ``base:`` ancestors, farthest ancestor first."""
    chain: list[PresetSource] = []
    seen: list[Path] = []
    path = _resolve_file(name_or_path)
    while True:
        if path.resolve() in seen:
            cycle = " -> ".join(_display(p) for p in [*seen, path])
            raise PresetError(f"preset inheritance cycle: {cycle}")
        seen.append(path.resolve())
        data = _read_yaml(path)
        base = data.pop("base", None)
        data.setdefault("name", path.stem)
        chain.append(PresetSource(_display(path), data))
        if base is None:
            break
        if not isinstance(base, str):
            raise PresetError(f"{_display(path)}: base: must be a preset name, got {base!r}")
        path = _resolve_file(base, relative_to=path.parent)
    chain.reverse()
    # A child does not inherit its ancestors' identity.
    for ancestor in chain[:-1]:
        ancestor.data.pop("name", None)
        ancestor.data.pop("description", None)
    return chain


OVERRIDE_LABEL = "--set"


def parse_overrides(overrides: Iterable[str]) -> list[PresetSource]:
    """Turn ``["train.epochs=5", "input.frames=512"]`` into one nested mapping per override (values parsed
    as YAML), each labelled with the override itself, so that an error names the ``--set`` that caused it."""
    combined: dict[str, Any] = {}  # all overrides together: a key set both as a value and as a section is an error
    sources = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise PresetError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set train.epochs=5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = combined
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise PresetError(f"--set {item!r}: '{part}' is set twice, once as a value")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise PresetError(f"--set {item!r}: '{parts[-1]}' is set twice, once as a section")
        node[parts[-1]] = value
        data: Any = value
        for part in reversed(parts):
            data = {part: data}
        sources.append(PresetSource(f"{OVERRIDE_LABEL} {item}", data))
    return sources


def merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings key by key, everything else (lists included) replaced whole."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _defines(data: dict[str, Any], loc: Sequence[Any]) -> bool:
    """Whether ``data`` sets the value at ``loc``, or a value above it (a list or a scalar holding it)."""
    node: Any = data
    for part in loc:
        if not isinstance(node, dict):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def _field_loc(loc: Sequence[Any]) -> list[Any]:
    """``loc`` without the names pydantic adds for union members (``literal['all','last-half']``,
    ``list[int]``): names while inside the schema's sections (fields, or an unknown key), then list indices."""
    model: Any = Preset
    kept: list[Any] = []
    for part in loc:
        is_section = isinstance(model, type) and issubclass(model, BaseModel)
        if isinstance(part, str) and is_section:
            kept.append(part)
            model = _section_of(model, part)
        elif isinstance(part, int):
            kept.append(part)
            model = None
        else:
            model = None
    return kept


def _section_of(model: Any, name: Any) -> Any:
    """The section class of field ``name`` of ``model`` (also inside ``Optional[...]``), else ``None``."""
    field = model.model_fields.get(name) if isinstance(model, type) and issubclass(model, BaseModel) else None
    candidates = [] if field is None else [field.annotation, *get_args(field.annotation)]
    return next((t for t in candidates if isinstance(t, type) and issubclass(t, BaseModel)), None)


def _valid_fields(loc: Sequence[Any]) -> list[str]:
    """Field names allowed at the parent of ``loc``."""
    model: Any = Preset
    for part in loc[:-1]:
        model = _section_of(model, part)
        if model is None:
            return []
    return list(model.model_fields)


def _describe(error: dict[str, Any], sources: Sequence[PresetSource]) -> str:
    loc = _field_loc(error["loc"])
    path = ".".join(str(p) for p in loc)
    files = [s.label for s in sources if not s.label.startswith(OVERRIDE_LABEL)]
    origin = next((s.label for s in reversed(sources) if _defines(s.data, loc)), files[-1])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _valid_fields(loc), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{origin}: {path}: unknown field{hint}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{origin}: {path}: {message}" if path else f"{origin}: {message}"


def validate_preset(sources: Sequence[PresetSource]) -> Preset:
    """Merge the layers and validate; the first error becomes one readable :class:`PresetError` line."""
    merged: dict[str, Any] = {}
    for source in sources:
        merged = merge(merged, source.data)
    try:
        return Preset.model_validate(merged)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [_describe(e, sources) for e in errors]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise PresetError(lines[0] + more) from None


def load_preset(name_or_path: str, overrides: Iterable[str] = ()) -> Preset:
    """Load a shipped preset by name (``giant-1536``) or a YAML file, apply ``--set`` overrides, validate."""
    return validate_preset(_chain(name_or_path) + parse_overrides(overrides))


def preset_to_yaml(preset: Preset) -> str:
    """The fully resolved preset as YAML text (what ``tad presets show`` prints and runs record)."""
    data = preset.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
