"""The JSON Schema: valid 2020-12, every key documented, and in agreement with the examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from framepack_render.shot.schema import load_schema
from framepack_render.shot.templates import load_with_extends

from .conftest import REPO


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def _undocumented(schema: dict, node: object, path: str) -> list[str]:
    missing = []
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            if "description" not in prop and "description" not in _resolve(schema, prop):
                missing.append(f"{path}.{name}")
        for key, child in node.items():
            missing += _undocumented(schema, child, f"{path}.{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            missing += _undocumented(schema, child, f"{path}[{i}]")
    return missing


def test_schema_is_valid_draft_2020_12():
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_key_has_a_description():
    schema = load_schema()
    assert _undocumented(schema, schema, "shot") == []


def test_the_spec_keys_are_all_in_the_schema():
    schema = load_schema()
    top = set(schema["properties"])
    assert {"version", "model", "output", "size", "fps", "seed", "steps", "guidance", "cfg",
            "negative_prompt", "window", "sampling", "sampler", "flow_shift", "teacache",
            "image", "end_image", "end_image_strength", "sections", "edits", "post",
            "experimental", "extends", "vars", "matrix", "prompt", "duration"} <= top
    section = set(schema["$defs"]["section"]["properties"])
    assert {"prompt", "duration", "frames", "image", "negative_prompt", "seed", "steps",
            "guidance", "cfg", "flow_shift", "teacache", "blend"} <= section
    edit = set(schema["$defs"]["edit"]["properties"])
    assert {"name", "image", "prompt", "controls", "target_index", "no_2x", "no_4x", "no_post",
            "output"} <= edit
    assert set(schema["$defs"]["post"]["properties"]) == {"color_match", "loop", "interpolate",
                                                           "crf"}
    assert set(schema["$defs"]["experimental"]["properties"]) == {
        "context_blur", "context_decay", "cfg_schedule", "transition_mu_boost"}


@pytest.mark.parametrize("shot", sorted((REPO / "examples").rglob("*.yaml"))
                         + sorted((REPO / "templates").glob("*.yaml")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_editors_accept_every_example_and_template(shot: Path):
    """What yaml-language-server sees: the file as written (before vars are substituted)."""
    doc, _ = load_with_extends(shot)
    validator = Draft202012Validator(load_schema())
    plain = doc.plain()
    errors = [e for e in validator.iter_errors(plain)
              if not (isinstance(e.instance, str) and "${" in e.instance)]
    assert errors == []
