"""Every frame a test reads is checked against the protocol's JSON Schema as it is decoded."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema

SCHEMA = files("fanout_core") / "schema" / "protocol.json"


@cache
def _validator(definition: str) -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    root = {**schema, "$ref": f"#/$defs/{definition}"}
    root.pop("anyOf", None)
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(root)
    return validator


def check(value: Any, definition: str = "frame") -> Any:
    """``value`` if it is a valid ``definition`` of the schema; else the schema's complaint."""
    _validator(definition).validate(value)
    return value


def decode(raw: bytes | str) -> dict[str, Any]:
    """One frame as a client receives it: JSON, and valid by the schema."""
    frame = json.loads(raw)
    assert isinstance(frame, dict), frame
    check(frame)
    return frame
