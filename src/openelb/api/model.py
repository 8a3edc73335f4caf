"""Shared pydantic plumbing for the CRD models: object metadata, strict-but-lossless
parsing, and translation of pydantic errors into InvalidObject.

Pure (DESIGN §3); used by api/eip.py and api/bgp.py. Models are frozen, keep unknown
fields (`extra="allow"`) so writing an object back never drops what a user set, and
use the CRD's own field names as aliases (STYLE §2.3).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic
from pydantic import ConfigDict, Field

from openelb.api import errors

__all__ = ["KubeModel", "ObjectMeta", "Resource", "SubfieldError", "parse_model"]

ModelT = TypeVar("ModelT", bound="KubeModel")


class SubfieldError(ValueError):
    """Raised by a model-level validator to blame one field inside the model."""

    def __init__(self, subfield: str, reason: str) -> None:
        self.subfield = subfield
        self.reason = reason
        super().__init__(reason)


class KubeModel(pydantic.BaseModel):
    """Base of every CRD model: frozen, lossless, CRD field names as aliases."""

    model_config = ConfigDict(
        # Only the CRD's own spellings bind fields: a key such as `namespace_selector` is
        # an unknown field (kept verbatim), exactly as the apiserver and OpenELB see it.
        frozen=True, extra="allow", validate_by_alias=True, validate_by_name=False,
        validate_default=False, defer_build=True
    )

    @pydantic.model_validator(mode="after")
    def _extras_are_not_fields(self) -> KubeModel:
        # pydantic counts an unknown key as "set" in fields_set even when it only shares a
        # field's Python name (e.g. `namespace_selector`); then to_raw() would also write
        # the field under its alias. Only keys spelled as the CRD spells them set a field.
        clash = set(self.model_extra or ()) & set(type(self).model_fields)
        if clash:
            object.__setattr__(self, "__pydantic_fields_set__",
                               self.__pydantic_fields_set__ - clash)
        return self

    def to_raw(self) -> dict[str, Any]:
        """The apiserver dict again: only fields that were set, unknown fields kept."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class ObjectMeta(KubeModel):
    """The parts of metadata openelb reads; everything else is kept untouched."""

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = Field(None, alias="resourceVersion")
    generation: int | None = None
    creation_timestamp: str | None = Field(None, alias="creationTimestamp")
    deletion_timestamp: str | None = Field(None, alias="deletionTimestamp")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: tuple[str, ...] = ()


class Resource(KubeModel):
    """apiVersion/kind/metadata common to all objects."""

    api_version: str = Field("", alias="apiVersion")
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


def parse_model(cls: type[ModelT], raw: Any) -> ModelT:
    """Validate `raw` into `cls`, turning the first pydantic error into InvalidObject."""
    try:
        return cls.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise _translate(exc) from None


def _translate(exc: pydantic.ValidationError) -> errors.InvalidObject:
    first = exc.errors(include_url=False)[0]
    field = _field_path(first["loc"])
    value = first.get("input")
    kind = first["type"]
    shown = _show(value)
    if kind == "missing":
        reason = "required"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        reason = f"must be an integer, got {shown}"
    elif kind in ("bool_parsing", "bool_type"):
        reason = f"must be true or false, got {shown}"
    elif kind == "string_type":
        reason = f"must be a string, got {shown}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        reason = f"must be an object, got {shown}"
    elif kind in ("list_type", "tuple_type"):
        reason = f"must be a list, got {shown}"
    elif kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        reason = f"must be one of {expected}, got {shown}"
    elif kind == "value_error":
        # Raised by our own validators: their message is already our wording.
        error = first.get("ctx", {}).get("error")
        if isinstance(error, SubfieldError):
            field = f"{field}.{error.subfield}"
        reason = str(error) if error is not None else first["msg"]
    elif kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        ctx = first.get("ctx", {})
        bound = {"le": "at most", "ge": "at least", "lt": "below", "gt": "above"}
        limit = next((f"{bound[k]} {v}" for k, v in ctx.items() if k in bound), "in range")
        reason = f"must be {limit}, got {shown}"
    else:
        message = first["msg"]
        reason = f"{message[:1].lower()}{message[1:]}, got {shown}"
    return errors.InvalidObject(field, reason, value=value)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-"):
            continue  # pydantic's internal name for a validator step (models avoid unions)
        else:
            path += f".{part}" if path else part
    return path or "(object)"


def _show(value: Any) -> str:
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
