"""The OpenAPI schema with the limits this server enforces, so generated clients refuse what it refuses.

FastAPI's schema comes from the request model, which knows the static rules only. The limits that
come from settings (names per request, characters per name) and from the checkpoint (top_k at most
the number of labels) are written into it here, with `oneOf` for "exactly one of name or names".
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.schemas import ClassifyRequest
from app.settings import Settings

REQUEST_SCHEMA = "ClassifyRequest"
REF_TEMPLATE = "#/components/schemas/{model}"


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Replace app.openapi with one that adds the server's limits; `app.state.num_labels` (set once the
    model is loaded) bounds top_k. The schema is cached once it has every limit."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
        )
        add_request_schema(schema)
        num_labels = getattr(app.state, "num_labels", None)
        add_limits(schema, settings, num_labels)
        if num_labels is not None:
            app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customize the schema


def add_request_schema(schema: dict[str, Any]) -> None:
    """`ClassifyRequest` among the components: /classify reads its body itself (app.json_body), so
    FastAPI does not see the model in the route's signature; the route's requestBody refers to it."""
    request_schema = ClassifyRequest.model_json_schema(ref_template=REF_TEMPLATE)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(request_schema.pop("$defs", {}))
    components[REQUEST_SCHEMA] = request_schema


def add_limits(schema: dict[str, Any], settings: Settings, num_labels: int | None) -> None:
    request = schema["components"]["schemas"][REQUEST_SCHEMA]
    properties = request["properties"]
    # JSON Schema counts code points; the server counts a name as read (NFKC, spaces trimmed, invisible
    # marks out), so a name near the limit may pass one and not the other: the description says so.
    length_rule = (
        f"at most {settings.max_name_length} characters as read: composed (NFKC, so the ligature U+FDFA counts "
        "18), spaces trimmed, invisible marks left out; maxLength counts code points instead"
    )
    for branch in properties["name"]["anyOf"]:
        if branch.get("type") == "string":
            branch["maxLength"] = settings.max_name_length
            branch["description"] = length_rule
    for branch in properties["names"]["anyOf"]:
        if branch.get("type") == "array":
            branch["maxItems"] = settings.max_names_per_request
            branch["items"]["maxLength"] = settings.max_name_length
            branch["items"]["description"] = length_rule
    if num_labels is not None:
        properties["top_k"]["maximum"] = num_labels
    properties["top_k"]["description"] += " (a JSON integer: 3, not 3.0)"
    request["oneOf"] = [
        {"required": ["name"], "properties": {"name": {"type": "string"}}},
        {"required": ["names"], "properties": {"names": {"type": "array"}}},
    ]
