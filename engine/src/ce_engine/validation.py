"""Strict request bodies: exact fields, exact types, bounded sizes; anything else is a 4xx."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class InvalidRequest(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Field:
    kind: type
    minimum: int
    maximum: int


def parse_json(body: bytes, content_type: str | None, limit: int) -> Any:
    if len(body) > limit:
        raise InvalidRequest(413, "body_too_large", f"body exceeds {limit} bytes")
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise InvalidRequest(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequest(400, "malformed_json", f"body is not valid JSON: {error}") from None


def validate(document: Any, schema: dict[str, Field]) -> dict[str, Any]:
    """Return the document if it has exactly the schema's fields with the right types and bounds."""
    if not isinstance(document, dict):
        raise InvalidRequest(422, "invalid_body", "body must be a JSON object")
    unknown = sorted(set(document) - set(schema))
    if unknown:
        raise InvalidRequest(422, "unknown_fields", f"unknown fields: {', '.join(unknown)}")
    missing = sorted(set(schema) - set(document))
    if missing:
        raise InvalidRequest(422, "missing_fields", f"missing fields: {', '.join(missing)}")
    for name, spec in schema.items():
        value = document[name]
        # bool is an int in Python; refuse it where a number is expected.
        if not isinstance(value, spec.kind) or isinstance(value, bool):
            raise InvalidRequest(422, "wrong_type", f"{name} must be {spec.kind.__name__}")
        size = len(value) if isinstance(value, str) else value if isinstance(value, int) else 0
        if not spec.minimum <= size <= spec.maximum:
            raise InvalidRequest(
                422, "out_of_range", f"{name} must be within [{spec.minimum}, {spec.maximum}]"
            )
    return document


SESSION = {"title": Field(str, 1, 200)}
THOUGHT = {"content": Field(str, 1, 4000)}
JOB = {"input": Field(str, 1, 1000), "iterations": Field(int, 1, 5_000_000)}
