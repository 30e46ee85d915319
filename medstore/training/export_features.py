"""The declared column types of an export: `datasets.Features` built from each recipe's
``export_features``, so that Arrow and Parquet column types never depend on the data (a field
that is null in every row of one export still has the type it has in the next one, and the two
concatenate).

A recipe declares its sample fields in a small vocabulary of plain values:

- ``"string"``, ``"int64"``, ``"float64"``, ``"bool"``: a `datasets.Value`;
- ``"json"``: any shape, stored as canonical JSON text (a string column);
- ``{"name": type, ...}``: a struct (missing keys are null; an undeclared key is an error);
- ``[type]``: a list.

A field the recipe does not declare is stored as ``"json"``. The exporter's own columns have
fixed types: ids, group, split, label and origin are strings, and the chat columns
(``messages``, ``prompt``, ``completion``, ``chosen``, ``rejected``) are lists of
``{role, content}`` messages.
"""

from __future__ import annotations

from typing import Any

from medstore.training.export_rows import ExportError
from medstore.warehouse.hashing import canonical_json

MESSAGE_LIST = [{"role": "string", "content": "string"}]
CHAT_COLUMNS = ("messages", "prompt", "completion", "chosen", "rejected")
STRING_COLUMNS = ("sample_id", "task_key", "group", "split", "label", "origin")
SCALARS = ("string", "int64", "float64", "bool")


class FeatureError(ExportError):
    """A value does not fit its declared type, or a declaration is not in the vocabulary."""


def column_spec(name: str, declared: dict[str, Any]) -> Any:
    """The type of one export column: fixed for the exporter's columns, else the recipe's
    declaration of the field (a clashing field is exported as ``sample_<name>``), else json."""
    if name in STRING_COLUMNS:
        return "string"
    if name in CHAT_COLUMNS:
        return MESSAGE_LIST
    field = name.removeprefix("sample_") if name.removeprefix("sample_") in declared else name
    return declared.get(field, "json")


def column_specs(columns: list[str], declared: dict[str, Any]) -> dict[str, Any]:
    return {name: column_spec(name, declared) for name in columns}


def to_feature(spec: Any) -> Any:
    """A vocabulary value as a `datasets` feature."""
    from datasets import List, Value

    if spec == "json":
        return Value("string")
    if isinstance(spec, str) and spec in SCALARS:
        return Value(spec)
    if isinstance(spec, dict):
        return {name: to_feature(value) for name, value in spec.items()}
    if isinstance(spec, list) and len(spec) == 1:
        return List(to_feature(spec[0]))
    raise FeatureError(
        f"unknown feature type {spec!r}: expected one of {', '.join(SCALARS)}, json, a dict or "
        "a one-element list"
    )


def features_of(specs: dict[str, Any]) -> Any:
    """The `datasets.Features` of the columns, in order."""
    from datasets import Features

    return Features({name: to_feature(spec) for name, spec in specs.items()})


def conform(value: Any, spec: Any, where: str) -> Any:
    """The value as its declared type stores it: json fields as text, structs checked for keys
    the declaration lacks (Arrow would drop them without a word)."""
    if value is None:
        return None
    if spec == "json":
        return canonical_json(value)
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise FeatureError(f"{where}: expected an object, got {type(value).__name__}")
        extra = sorted(set(value) - set(spec))
        if extra:
            raise FeatureError(f"{where}: field(s) {', '.join(extra)} not declared")
        return {
            name: conform(value.get(name), sub, f"{where}.{name}") for name, sub in spec.items()
        }
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise FeatureError(f"{where}: expected a list, got {type(value).__name__}")
        return [conform(item, spec[0], f"{where}[]") for item in value]
    return value


def arrow_table(
    rows: list[dict[str, Any]], specs: dict[str, Any], recipe: str
) -> tuple[Any, list[str]]:
    """A pyarrow table with the declared schema (its `datasets` features in the metadata), and
    the columns stored as JSON text."""
    import pyarrow as pa

    schema = features_of(specs).arrow_schema
    arrays = []
    for name, spec in specs.items():
        try:
            values = [conform(row.get(name), spec, name) for row in rows]
            arrays.append(pa.array(values, type=schema.field(name).type))
        except FeatureError as exc:
            raise FeatureError(
                f"recipe {recipe}: {exc}; fix the recipe's export_features"
            ) from None
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise FeatureError(
                f"recipe {recipe}: column {name!r} does not fit its declared type {spec!r} "
                f"({exc}); fix the recipe's export_features"
            ) from None
    json_columns = [name for name, spec in specs.items() if spec == "json"]
    return pa.Table.from_arrays(arrays, schema=schema), json_columns
