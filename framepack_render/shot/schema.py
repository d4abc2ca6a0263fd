"""The JSON Schema of shot files, and its errors turned into one-line messages."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import Report, suggest
from .yaml_loader import Node

_SCHEMA_NAME = "shot.schema.json"
MAX_UNKNOWN_KEYS = 50  # listed one by one per mapping; a flood of them is counted instead


def schema_path() -> Path:
    """The shipped schema: inside the wheel, or the repository's schemas/ in a checkout."""
    packaged = resources.files("framepack_render") / "data" / _SCHEMA_NAME
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "schemas" / _SCHEMA_NAME


def schema_text() -> str:
    return schema_path().read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return json.loads(schema_text())


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator  # imported on first use: keeps start-up quick

    return Draft202012Validator(load_schema())


def check_schema(doc: Node, report: Report) -> None:
    """Validate a merged, substituted shot against the schema, adding one error per problem."""
    seen: set[tuple] = set()
    for error in _validator().iter_errors(doc.plain()):
        _explain(error, doc, report, seen)


def _explain(error: Any, doc: Node, report: Report, seen: set[tuple]) -> None:
    path = list(error.absolute_path)
    if _other_engine(doc) and list(error.relative_schema_path)[:1] in (
            ["properties"], ["patternProperties"], ["additionalProperties"]):
        return  # FramePack's top-level keys; the engine's own schema checks this shot
    if error.validator in ("oneOf", "anyOf"):
        inner = _relevant_branch_errors(error)
        if inner:
            for sub in inner:
                _explain(sub, doc, report, seen)
            return
    key = (tuple(path), error.validator)
    if key in seen:
        return
    seen.add(key)
    node, mark = doc.at(path)
    name = _path_name(path)
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    v = error.validator

    if v == "additionalProperties":
        allowed = _allowed_keys(error.schema)
        extras = [k for k in instance if k not in error.schema.get("properties", {})
                  and not k.startswith("x-")]
        where = f" in {name}" if name != "the shot" else ""
        for extra in extras[:MAX_UNKNOWN_KEYS]:
            report.error(node.key_mark(extra), f"unknown key '{extra}'{where}{suggest(extra, allowed)}")
        if len(extras) > MAX_UNKNOWN_KEYS:
            rest = len(extras) - MAX_UNKNOWN_KEYS
            report.error(node.key_mark(extras[MAX_UNKNOWN_KEYS]),
                         f"and {rest} more unknown key{'s' if rest > 1 else ''}{where} from here "
                         "on (not listed one by one)")
        return
    if v == "required":
        missing = error.validator_value
        for key in missing:
            if key not in instance:
                report.error(mark, f"{name} needs '{key}'{_required_hint(key)}")
        return
    if v == "propertyNames":
        for key in instance:
            if not _is_var_name(key):
                report.error(node.key_mark(key), f"'{key}' is not a var name: use letters, digits "
                                                 "and '_', not starting with a digit")
        return
    if v == "not" and "x-engine" in schema and len(path) == 1:
        report.error(doc.key_mark(path[0]), f"'{path[0]}' is a key of engine: "
                                            f"{schema['x-engine']}; set engine: "
                                            f"{schema['x-engine']}, or remove it")
        return
    report.error(mark, _message(v, error.validator_value, instance, name, schema, path))


def _relevant_branch_errors(error: Any) -> list[Any]:
    """For oneOf/anyOf: the errors of the branches whose type fits the value, if any."""
    fitting: dict[int, list[Any]] = {}
    for sub in error.context:
        branch = sub.schema_path[0] if sub.schema_path else 0
        fitting.setdefault(branch, []).append(sub)
    candidates = []
    for subs in fitting.values():
        if any(s.validator in ("type", "const") and len(s.relative_path) == 0 for s in subs):
            continue
        if any(s.validator == "enum" and len(s.relative_path) == 0
               and not isinstance(s.instance, str) for s in subs):
            continue
        if any(s.validator == "pattern" and len(s.relative_path) == 0
               and isinstance(s.schema, dict) and s.schema.get("x-schedule") for s in subs):
            continue  # text that is no schedule: the setting's other forms say what it takes
        candidates.append(subs)
    if len(candidates) != 1:
        return []
    return candidates[0]


def _message(v: str, expected: Any, instance: Any, name: str, schema: dict, path: list) -> str:
    shown = _describe(instance)
    if v in ("oneOf", "anyOf"):
        return f"{name} must be {schema.get('x-expected', 'one of the documented forms')}, not {shown}"
    if v == "type":
        return f"{name} must be {_type_phrase(expected, schema)}, not {shown}"
    if v == "enum":
        options = ", ".join(str(o) for o in expected)
        hint = suggest(str(instance), [str(o) for o in expected]) if isinstance(instance, str) else ""
        if hint:
            return f"unknown {name} '{instance}'{hint}"
        return f"{name} must be one of {options}, not {shown}"
    if v == "const":
        if path == ["version"]:
            return f"unsupported version {shown}; this framepack-render reads version 1"
        return f"{name} must be {expected!r}, not {shown}"
    if v == "minimum":
        return f"{name} must be at least {expected}, not {shown}"
    if v == "exclusiveMinimum":
        return f"{name} must be greater than {expected}, not {shown}"
    if v == "maximum":
        return f"{name} must be at most {expected}, not {shown}"
    if v == "exclusiveMaximum":
        return f"{name} must be less than {expected}, not {shown}"
    if v == "minLength":
        return f"{name} must not be empty"
    if v == "minItems":
        return f"{name} needs at least {expected} item{'s' if expected != 1 else ''}"
    if v == "maxItems":
        return f"{name} takes at most {expected} items"
    if v == "minProperties":
        return f"{name} must not be empty"
    if v == "pattern":
        return f"{name} {shown} is not valid here ({schema.get('x-expected') or _pattern_hint(path)})"
    return f"{name}: {shown} is not valid ({v})"


def _pattern_hint(path: list) -> str:
    last = next((p for p in reversed(path) if isinstance(p, str)), "")
    if last == "name":
        return "use letters, digits, '_', '.' and '-', starting with a letter"
    if last in ("duration", "blend"):
        return "write seconds such as \"2.4s\" or 2.4, or {frames: 72}"
    if last == "size":
        return "write WIDTHxHEIGHT such as \"640x640\""
    return "see `framepack schema`"


def _type_phrase(expected: Any, schema: dict) -> str:
    if "x-expected" in schema:
        return schema["x-expected"]
    names = {
        "string": "text", "integer": "a whole number", "number": "a number",
        "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "empty",
    }
    if isinstance(expected, list):
        return " or ".join(names.get(t, t) for t in expected)
    return names.get(expected, str(expected))


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return f"'{short}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _path_name(path: list) -> str:
    if not path:
        return "the shot"
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _allowed_keys(schema: dict) -> list[str]:
    """The keys a mapping takes (at the top, without those of other engines)."""
    return sorted(k for k, v in schema.get("properties", {}).items()
                  if not (isinstance(v, dict) and "x-engine" in v))


def _other_engine(doc: Node) -> bool:
    """Does the shot name an engine whose keys its own part of the schema checks?"""
    engine = doc.get("engine")
    return engine is not None and engine.value == "flux-deforum"


def _is_var_name(key: str) -> bool:
    return bool(key) and (key[0].isalpha() or key[0] == "_") and all(
        c.isalnum() or c == "_" for c in key) and key.isascii()


def _required_hint(key: str) -> str:
    return {
        "image": " (the start image: FramePack animates an image)",
        "output": " (where to write the render, such as renders/shot.mp4)",
        "prompt": "",
    }.get(key, "")
