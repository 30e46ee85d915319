"""A recipe's export column types from its pydantic models: ``model_spec(PatientProfile)`` is
the struct the export declares for a field holding that model's dump (vocabulary in
medstore.training.export_features)."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel

SCALAR_TYPES = {str: "string", int: "int64", float: "float64", bool: "bool"}


def type_spec(annotation: Any) -> Any:
    """A Python annotation as an export type: scalars, lists, models; optional values unwrap
    (every column may be null); a literal is the type of its values; anything else is json."""
    origin = typing.get_origin(annotation)
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if origin in (Union, types.UnionType):
        return type_spec(args[0]) if len(args) == 1 else "json"
    if origin is typing.Annotated:
        return type_spec(args[0])
    if origin is Literal:
        kinds = {SCALAR_TYPES.get(type(value)) for value in args}
        return kinds.pop() if len(kinds) == 1 and None not in kinds else "json"
    if origin is list and len(args) == 1:
        return [type_spec(args[0])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_spec(annotation)
    return SCALAR_TYPES.get(annotation, "json")


def model_spec(model: type[BaseModel]) -> dict[str, Any]:
    """The struct of a model's ``model_dump()``: one entry per field, in declaration order."""
    return {name: type_spec(field.annotation) for name, field in model.model_fields.items()}
