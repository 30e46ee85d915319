"""Command-line options generated from a pydantic model, so each default, bound and help text
is declared once (on the model) and the CLI cannot drift from the library.

A field ``max_cost: float | None = Field(None, ge=0, description="...")`` becomes
``--max-cost FLOAT RANGE`` with that help; ``bool`` fields become flags (``--x/--no-x`` when
they default to true); ``list`` fields are repeatable; ``Literal`` fields are choices.
``json_schema_extra={"cli": False}`` keeps a field off the command line, and
``{"cli": {"flag": "--data", "metavar": "DIR"}}`` renames it or its value's placeholder.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import annotated_types
import click
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def cli_settings(field: FieldInfo) -> dict[str, Any] | None:
    """The field's ``cli`` settings; None when the field stays off the command line."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    settings = extra.get("cli", {})
    if settings is False:
        return None
    return dict(settings) if isinstance(settings, dict) else {}


def flag_name(name: str, field: FieldInfo) -> str:
    settings = cli_settings(field) or {}
    return settings.get("flag") or "--" + name.replace("_", "-")


def unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def click_type(annotation: Any, field: FieldInfo) -> Any:
    """The click type of one value: a choice, a bounded number, or text."""
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice([str(value) for value in typing.get_args(annotation)])
    bounds: dict[str, Any] = {}
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            bounds["min"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            bounds.update(min=item.gt, min_open=True)
        elif isinstance(item, annotated_types.Le):
            bounds["max"] = item.le
        elif isinstance(item, annotated_types.Lt):
            bounds.update(max=item.lt, max_open=True)
    if annotation is int:
        if not bounds:
            return click.INT
        return click.IntRange(
            bounds.get("min"), bounds.get("max"), min_open="min_open" in bounds,
            max_open="max_open" in bounds,
        )  # fmt: skip
    if annotation is float:
        return click.FloatRange(**bounds) if bounds else click.FLOAT
    return click.STRING


def default_of(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def help_text(field: FieldInfo, default: Any) -> str:
    text = field.description or ""
    if default not in (None, False, [], ()) and "[default" not in text:
        shown = "yes" if default is True else default
        text = f"{text} [default: {shown}]".strip()
    return text


def model_option(name: str, field: FieldInfo, *, param_name: str | None = None) -> click.Option:
    """One click option for one model field. Its default is None (or unset for flags), so a
    caller can tell what was given; the model supplies the real default."""
    settings = cli_settings(field) or {}
    flag = flag_name(name, field)
    dest = param_name or name
    annotation = unwrap_optional(field.annotation)
    default = default_of(field)
    help_ = help_text(field, default)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if default is True and "/" not in flag:
            flag = f"{flag}/--no-{flag[2:]}"
        return click.Option([flag, dest], default=None, help=help_, is_flag=True)
    if origin in (list, tuple, set, frozenset):
        (item,) = typing.get_args(annotation)[:1] or (str,)
        return click.Option(
            [flag, dest], multiple=True, type=click_type(item, field), help=help_,
            metavar=settings.get("metavar"),
        )  # fmt: skip
    if field.is_required():
        # No default at all: click (8.3 on) takes an explicit default=None as a value given.
        return click.Option(
            [flag, dest],
            type=click_type(annotation, field),
            help=help_,
            metavar=settings.get("metavar"),
            required=True,
        )
    # ``flag_value``: the option's value is optional (``--resume`` alone means that value).
    optional_value = (
        {"is_flag": False, "flag_value": settings["flag_value"]} if "flag_value" in settings else {}
    )
    return click.Option(
        [flag, dest],
        type=click_type(annotation, field),
        default=None,
        help=help_,
        metavar=settings.get("metavar"),
        **optional_value,
    )


def model_options(model: type[BaseModel], *, exclude: Iterable[str] = ()) -> list[click.Option]:
    """An option for each field of ``model`` that belongs on the command line."""
    skip = set(exclude)
    return [
        model_option(name, field)
        for name, field in model.model_fields.items()
        if name not in skip and cli_settings(field) is not None
    ]


def add_model_options(model: type[BaseModel], *, exclude: Iterable[str] = ()) -> Callable:
    """Decorator: a command takes ``model``'s fields as options (in the model's order)."""

    def decorate(fn: Callable) -> Callable:
        # What @click.option does: options collect on the function, last decorator first.
        params = getattr(fn, "__click_params__", [])
        params.extend(reversed(model_options(model, exclude=exclude)))
        fn.__click_params__ = params  # type: ignore[attr-defined]
        return fn

    return decorate


def given(ctx: click.Context, names: Iterable[str]) -> dict[str, Any]:
    """The parameters the user actually gave (command line or environment), by name."""
    values = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source in (
            click.core.ParameterSource.COMMANDLINE,
            click.core.ParameterSource.ENVIRONMENT,
        ):
            value = ctx.params[name]
            values[name] = list(value) if isinstance(value, tuple) else value
    return values


def build_model(model: type[BaseModel], values: dict[str, Any], **fixed: Any) -> Any:
    """``model`` from the given values, or a one-line error naming the flag at fault."""
    try:
        return model.model_validate({**values, **fixed})
    except ValidationError as exc:
        raise click.ClickException(describe_validation_error(model, exc)) from None


def describe_validation_error(model: type[BaseModel], exc: ValidationError) -> str:
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    field = model.model_fields.get(name)
    where = flag_name(name, field) if field is not None else name or "options"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if not message.startswith(where) else message
