"""Blueprint models: the JSON-serialisable description of a workflow.

flowcraft's JSON (camelCase) loads unchanged; Python code may use snake_case field names.
Every loading error names the blueprint, the node or edge, and the field that is wrong, so a
user never has to guess which of fifty nodes broke the load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .errors import FlowcraftError

JoinStrategy = Literal["all", "any"]

#: Ids are used in DynamoDB attribute names, SQS payloads and Mermaid output.
MAX_ID_LENGTH = 200


class BlueprintError(FlowcraftError, ValueError):
    """A blueprint could not be loaded; the message names the place and the field."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=False,
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The camelCase wire form, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class NodeConfig(_Model):
    """Per-node execution policy (times are milliseconds, as in flowcraft)."""

    max_retries: int = Field(default=0, ge=0, le=100)
    retry_delay: float = Field(default=0, ge=0)
    backoff: float = Field(default=2.0, ge=1.0, le=10.0)
    timeout: float | None = Field(default=None, gt=0)
    fallback: str | None = None
    join_strategy: JoinStrategy = "all"
    max_iterations: int | None = Field(default=None, ge=1)

    @field_validator("retry_delay", "timeout", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: Any) -> Any:
        """Durations may be written as flowcraft strings (``"5s"``, ``"500ms"``)."""
        if isinstance(value, str):
            from .durations import parse_duration_ms

            return parse_duration_ms(value, to_camel(info.field_name))
        return value


class NodeDefinition(_Model):
    """One node: ``uses`` names an implementation in the registry."""

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    uses: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: str | dict[str, str] | None = None
    config: NodeConfig = Field(default_factory=NodeConfig)

    @field_validator("id")
    @classmethod
    def _id_charset(cls, value: str) -> str:
        if any(ch in value for ch in "#\n\r\t") or value != value.strip():
            raise ValueError("must not contain '#', control characters or surrounding spaces")
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _none_params(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("config", mode="before")
    @classmethod
    def _none_config(cls, value: Any) -> Any:
        return {} if value is None else value


class EdgeDefinition(_Model):
    """A directed edge, optionally gated by an action and/or a condition."""

    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    action: str | None = None
    condition: str | None = None
    transform: str | None = None

    @field_validator("condition", "transform")
    @classmethod
    def _valid_expression(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from .expressions import ExpressionError, compile_expression

        try:
            compile_expression(value)
        except ExpressionError as exc:
            raise ValueError(f"invalid expression {value!r}: {exc}") from None
        return value


class WorkflowBlueprint(_Model):
    """A workflow graph. Extensions to flowcraft's format are additive."""

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    #: An empty blueprint is valid and completes at once (as in flowcraft).
    nodes: list[NodeDefinition] = Field(default_factory=list)
    edges: list[EdgeDefinition] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("edges", "metadata", mode="before")
    @classmethod
    def _none_lists(cls, value: Any, info: Any) -> Any:
        if value is None:
            return [] if info.field_name == "edges" else {}
        return value

    @model_validator(mode="after")
    def _references(self) -> WorkflowBlueprint:
        seen: set[str] = set()
        problems: list[str] = []
        for index, node in enumerate(self.nodes):
            if node.id in seen:
                problems.append(f"nodes[{index}] (id {node.id!r}): duplicate node id")
            seen.add(node.id)
        for index, edge in enumerate(self.edges):
            for end in ("source", "target"):
                ref = getattr(edge, end)
                if ref not in seen:
                    problems.append(
                        f"edges[{index}] ({edge.source!r} -> {edge.target!r}): {end}: "
                        f"unknown node {ref!r}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def node(self, node_id: str) -> NodeDefinition:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"blueprint {self.id!r} has no node {node_id!r}")


def _describe_location(data: Any, loc: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into 'nodes[2] (id 'x'): config.maxRetries'."""
    parts: list[str] = []
    cursor: Any = data
    for step in loc:
        if isinstance(step, int):
            label = f"[{step}]"
            item = cursor[step] if isinstance(cursor, list) and step < len(cursor) else None
            if isinstance(item, Mapping):
                if "id" in item:
                    label += f" (id {item['id']!r})"
                elif "source" in item or "target" in item:
                    label += f" ({item.get('source')!r} -> {item.get('target')!r})"
                label += ":"
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
            cursor = item
        else:
            parts.append(str(step))
            cursor = cursor.get(step) if isinstance(cursor, Mapping) else None
    text = ".".join(parts).replace(":.", ": ")
    return text.rstrip(":")


def load_blueprint(data: WorkflowBlueprint | Mapping[str, Any] | str | bytes) -> WorkflowBlueprint:
    """Load a blueprint from a model, a dict or JSON text, with errors that name the place."""
    if isinstance(data, WorkflowBlueprint):
        return data
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise BlueprintError(f"blueprint is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise BlueprintError(f"blueprint must be a JSON object, not {type(data).__name__}")
    blueprint_id = data.get("id", "<no id>")
    try:
        return WorkflowBlueprint.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = _describe_location(data, tuple(error["loc"]))
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        summary = "; ".join(problems)
        raise BlueprintError(f"blueprint {blueprint_id!r}: {summary}", problems) from None
