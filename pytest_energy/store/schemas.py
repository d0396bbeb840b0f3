"""Documents checked against the JSON Schemas the package ships, with jsonschema.

``report-schema.json`` describes the JSON report (so a stored run) and
``baseline-cache-schema.json`` a baseline cache entry. jsonschema is imported by the first
check, not when the plugin loads (every pytest run loads it), and each schema's validator is
built once per process, for the draft the schema declares. A number must be one a float
holds: JSON has no NaN or infinity, but Python's ``json`` reads ``NaN``, ``Infinity`` and
``1e999`` (as inf), and an integer of 400 digits overflows a float.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, Dict, Tuple

SCHEMA_DIR = Path(__file__).resolve().parent.parent
REPORT_SCHEMA = "report-schema.json"
BASELINE_CACHE_SCHEMA = "baseline-cache-schema.json"
LOCAL_REF = "#/$defs/"
MESSAGE_CHARS = 160  # a longer message (it quotes the offending value) is cut to this
NUMBER_CHARS = 40


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def inline_local_refs(schema: Dict[str, Any]) -> Dict[str, Any]:
    """``schema`` with each ``{"$ref": "#/$defs/name"}`` replaced by that definition (a recursive one is kept).

    The same schema, validated about three times faster: jsonschema resolves a ``$ref`` on
    every use, so a stored run of a thousand tests costs a second with them (0.5 s without).
    """
    definitions = schema.get("$defs", {})

    def inline(node: Any, inside: Tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, inside) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        name = ref[len(LOCAL_REF):] if isinstance(ref, str) and ref.startswith(LOCAL_REF) else None
        siblings = {key: value if key == "$defs" else inline(value, inside) for key, value in node.items() if key != "$ref"}
        if name not in definitions or name in inside:
            return {**siblings, **({"$ref": ref} if ref is not None else {})}
        definition = inline(definitions[name], inside + (name,))
        if not siblings:
            return definition
        return {**siblings, "allOf": [*siblings.get("allOf", []), definition]}  # a $ref beside keywords applies both

    return inline(schema, ())  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=None)
def _validator(schema_file: str) -> Any:
    """A validator for ``schema_file`` (in the package, its local ``$ref``s inlined), whose numbers are finite."""
    import jsonschema.validators

    schema = inline_local_refs(json.loads((SCHEMA_DIR / schema_file).read_text(encoding="utf-8")))
    declared = jsonschema.validators.validator_for(schema)
    types = declared.TYPE_CHECKER.redefine_many({
        "number": lambda _, value: _finite_number(value),
        "integer": lambda _, value: _finite_number(value) and float(value).is_integer(),
    })
    return jsonschema.validators.extend(declared, type_checker=types)(schema)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(error: Any) -> str:
    """One line: the JSON path of ``error`` and what is wrong there."""
    value = error.instance
    if error.validator == "type" and type(value) in (int, float) and not _finite_number(value):
        message = f"{_shorten(str(value), NUMBER_CHARS)} is not a finite number"
    else:
        message = _shorten(error.message, MESSAGE_CHARS)
    line = f"{error.json_path}: {message}"
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in line)


def check(document: Any, schema_file: str) -> None:
    """Raise ``ValueError`` naming where ``document`` breaks ``schema_file`` and how, if it does.

    Of several errors, one in the document's ``schema`` field comes first (a document of
    another kind is named as such, not by its first difference); then jsonschema's best match.
    """
    from jsonschema.exceptions import best_match, relevance

    error = best_match(
        _validator(schema_file).iter_errors(document),
        key=lambda error: (list(error.absolute_path) == ["schema"], relevance(error)),
    )
    if error is not None:
        raise ValueError(_describe(error))
