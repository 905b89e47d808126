"""Request and response bodies of the HTTP API, with the examples shown at /docs.

Static rules live here (types, exactly one of name/names, no unknown fields); limits that come
from settings or the checkpoint (names per request, name length, top_k ceiling) are checked in
`app.validation`.
"""
from __future__ import annotations

import logging
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

logger = logging.getLogger(__name__)

DEFAULT_TOP_K = 3

Name = Annotated[str, StringConstraints(min_length=1)]

SINGLE_RESPONSE_EXAMPLE: dict[str, Any] = {
    "name": "Hinton",
    "predictions": [
        {"label": "Scottish", "probability": 0.61, "log_probability": -0.494},
        {"label": "English", "probability": 0.32, "log_probability": -1.139},
        {"label": "Irish", "probability": 0.04, "log_probability": -3.219},
    ],
    "model_id": "nameorigin-gru-0f5f335e0196",
}
BATCH_RESPONSE_EXAMPLE: dict[str, Any] = {
    "results": [
        {"name": "Hinton", "predictions": [{"label": "Scottish", "probability": 0.61, "log_probability": -0.494}]},
        {"name": "Nguyễn", "predictions": [{"label": "Vietnamese", "probability": 0.97, "log_probability": -0.03}]},
    ],
    "model_id": "nameorigin-gru-0f5f335e0196",
}


class ClassifyRequest(BaseModel):
    """One name (`name`) or a batch (`names`), never both; strict JSON types, no unknown fields."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"name": "Hinton", "top_k": 3},
                {"names": ["Hinton", "Nguyễn", "王"], "top_k": 3},
            ]
        },
    )

    name: Name | None = Field(None, description="one name; answered as {name, predictions}")
    names: list[Name] | None = Field(
        None, min_length=1, description="several names; answered as {results: [...]} in input order"
    )
    top_k: int = Field(DEFAULT_TOP_K, ge=1, description="labels returned per name, at most the number of labels")

    @model_validator(mode="after")
    def _exactly_one_of_name_or_names(self) -> "ClassifyRequest":
        if (self.name is None) == (self.names is None):
            given = "both" if self.name is not None else "neither"
            raise PydanticCustomError(
                "name_or_names", "give exactly one of 'name' or 'names' (got {given})", {"given": given}
            )
        return self

    @property
    def name_batch(self) -> list[str]:
        """The names to classify, in input order, whichever form the request used."""
        return [self.name] if self.name is not None else list(self.names or [])


class Prediction(BaseModel):
    label: str
    probability: float = Field(description="in [0, 1]; over all labels they sum to 1")
    log_probability: float = Field(description="natural log of `probability`, as the network computed it")


class NameResult(BaseModel):
    """The top-k labels of one name, most probable first."""

    name: str = Field(description="the name exactly as sent")
    predictions: list[Prediction]


class ClassifyResponse(NameResult):
    """Answer to a request with `name`."""

    model_config = ConfigDict(json_schema_extra={"examples": [SINGLE_RESPONSE_EXAMPLE]})

    model_id: str = Field(description="the checkpoint that answered (see GET /model)")


class BatchClassifyResponse(BaseModel):
    """Answer to a request with `names`: one result per name, in input order."""

    model_config = ConfigDict(json_schema_extra={"examples": [BATCH_RESPONSE_EXAMPLE]})

    results: list[NameResult]
    model_id: str = Field(description="the checkpoint that answered (see GET /model)")


class ModelCard(BaseModel):
    """What is being served: identity, architecture, labels, evaluation and data provenance."""

    id: str = Field(description="model id: architecture plus the checkpoint digest")
    architecture: str
    network: dict[str, Any] = Field(description="the network config saved in the checkpoint")
    labels: list[str] = Field(description="every label the model can answer, in the checkpoint's order")
    num_labels: int
    max_name_length: int = Field(description="characters the model reads per name, after transliteration")
    metrics: dict[str, Any] = Field(description="evaluation saved at training time, per split; `metrics_note` says which network each is of")
    metrics_note: str | None = Field(
        None, description="for a network refit on train + val: val is the held-out run's, test the served network's"
    )
    data_fingerprint: str | None = Field(description="hash of the training data the model was fitted on")
    split_rule: Any = None
    training: Any = None
    torch_version: str | None = None
    created_at: str | None = None
    device: str = Field(description="where the network runs: cpu or cuda")


class StatusResponse(BaseModel):
    status: str = Field(examples=["ok"])


class FieldError(BaseModel):
    field: str = Field(description="which part of the request: a body field such as `top_k` or `names[2]`, `body`, or a header")
    message: str
    type: str = Field(description="machine-readable kind of problem, e.g. `unreadable_name`, `extra_forbidden`, `missing`")


class ErrorResponse(BaseModel):
    """Body of every 4xx/503 answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_request",
                    "message": "the request is not valid; see errors",
                    "errors": [
                        {"field": "names[1]", "message": "name has no letters after transliteration to Latin (got '123')", "type": "unreadable_name"}
                    ],
                }
            ]
        }
    )

    error: str = Field(description="short code: invalid_request, unsupported_media_type, body_too_large, overloaded, not_ready, ...")
    message: str
    errors: list[FieldError] = Field(default_factory=list)
