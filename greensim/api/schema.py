"""The JSON Schema of the experiment format (for editors), as ``greensim schema`` prints it."""

from __future__ import annotations

import json

from greensim.experiment.schema import json_schema

__all__ = ["json_schema", "schema_text"]


def schema_text() -> str:
    """:func:`json_schema` as indented JSON text (no trailing newline)."""
    return json.dumps(json_schema(), indent=2)
