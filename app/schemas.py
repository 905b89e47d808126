"""Request and response bodies of the HTTP API, with the examples shown at /docs.

Static rules live here (types, exactly one of name/names, no unknown fields); limits that come
from settings or the checkpoint (names per request, name length, top_k ceiling) are checked in
`app.validation`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from model.predictor import ABSTAIN_REASONS, DEFAULT_TOP_K
from model.priors import PRIOR_NAMES

Name = Annotated[str, StringConstraints(min_length=1)]
PriorWeight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
AbstainReason = Literal[ABSTAIN_REASONS]  # type: ignore[valid-type]  # one list of reasons, in model.predictor

# The examples are answers of the shipped model (a test checks that they still are).
SINGLE_RESPONSE_EXAMPLE: dict[str, Any] = {
    "name": "Hinton",
    "predictions": [
        {"label": "English", "probability": 0.9943, "log_probability": -0.0057},
        {"label": "German", "probability": 0.0009, "log_probability": -6.9933},
        {"label": "Czech", "probability": 0.0008, "log_probability": -7.0772},
    ],
    "abstained": False,
    "reason": None,
    "read_as": "hinton",
    "script": "Latin",
    "tokens": [],
    "model_id": "nameorigin-gru-99634a72484b",
}
BATCH_RESPONSE_EXAMPLE: dict[str, Any] = {
    "results": [
        {
            "name": "Nguyen Van Minh",
            "abstained": False,
            "reason": None,
            "read_as": "nguyen van minh",
            "script": "Latin",
            "predictions": [{"label": "Vietnamese", "probability": 0.96, "log_probability": -0.04}],
            "tokens": [
                {
                    "text": "Nguyen",
                    "read_as": "nguyen",
                    "script": "Latin",
                    "abstained": False,
                    "reason": None,
                    "predictions": [{"label": "Vietnamese", "probability": 0.89, "log_probability": -0.12}],
                },
                {
                    "text": "Van Minh",
                    "read_as": "van minh",
                    "script": "Latin",
                    "abstained": False,
                    "reason": None,
                    "predictions": [{"label": "Russian", "probability": 0.47, "log_probability": -0.75}],
                },
            ],
        },
        {
            "name": "김",
            "abstained": False,
            "reason": None,
            "read_as": "kim",
            "script": "Hangul",
            "tokens": [],
            "predictions": [{"label": "Korean", "probability": 1.0, "log_probability": -0.0}],
        },
        {
            "name": "qwerty",
            "abstained": True,
            "reason": "not-a-name",
            "read_as": "qwerty",
            "script": "Latin",
            "tokens": [],
            "predictions": [],
        },
    ],
    "model_id": "nameorigin-gru-99634a72484b",
}
EXPLAINED_RESPONSE_EXAMPLE: dict[str, Any] = {
    "name": "Nguyễn",
    "predictions": [{"label": "Vietnamese", "probability": 0.9936, "log_probability": -0.0064}],
    "abstained": False,
    "reason": None,
    "read_as": "nguyen",
    "script": "Latin",
    "tokens": [],
    "explained_label": "Vietnamese",
    "explanation": [
        {"text": "N", "score": 0.09},
        {"text": "g", "score": 0.0653},
        {"text": "u", "score": 0.0665},
        {"text": "y", "score": 0.0959},
        {"text": "ễ", "score": 0.2134},
        {"text": "n", "score": 0.0288},
    ],
    "explanation_words": [],
    "model_id": "nameorigin-gru-99634a72484b",
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

    name: Name | None = Field(None, description="one name or full name; answered as {name, predictions, ...}")
    names: list[Name] | None = Field(
        None, min_length=1, description="several names; answered as {results: [...]} in input order"
    )
    top_k: int = Field(DEFAULT_TOP_K, ge=1, description="labels returned per name, at most the number of labels")
    prior: Literal[PRIOR_NAMES] | dict[str, PriorWeight] = Field(  # type: ignore[valid-type]
        "dataset",
        description=(
            "the label prior to answer under, applied by Bayes' rule: `dataset` (the training data's, the default), "
            "`uniform` (every label equally likely), or a {label: weight} map (weights >= 0, normalized; a label "
            "left out or weighted 0 is never answered)"
        ),
    )
    min_probability: float = Field(
        0.0, ge=0.0, le=1.0, description="abstain (`low-confidence`) when the top label's probability is below this"
    )
    explain: bool = Field(
        False,
        description=(
            "also say why: each answered name gets `explanation`, how much each of its characters raised (+) or "
            "lowered (-) the top label's probability, by exact occlusion (each character removed in turn)"
        ),
    )
    explain_labels: list[str] | None = Field(
        None,
        min_length=1,
        description="with `explain`: also explain these labels (each named once), in `explanations` ({label: [fragments]})",
    )

    @field_validator("prior", mode="before")
    @classmethod
    def _prior_name_is_known(cls, value: object) -> object:
        """One clear error for a prior of no allowed shape, instead of one per branch of the union named
        by pydantic's internals (`prior.literal['dataset','uniform']`, `prior.dict[str,constrained-float]`)."""
        if isinstance(value, str) and value in PRIOR_NAMES:
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "invalid_prior",
                "prior must be 'dataset', 'uniform' or a {label: weight} object; got {value}",
                {"value": repr(value)},  # pydantic fills {value} from here; it knows no !r
            )
        for label, weight in value.items():
            number = isinstance(weight, int | float) and not isinstance(weight, bool)
            if not number or not math.isfinite(weight) or weight < 0:
                raise PydanticCustomError(
                    "invalid_prior",
                    "prior's weight for {label} must be a number >= 0; got {weight}",
                    {"label": repr(label), "weight": repr(weight)},
                )
        return value

    @model_validator(mode="after")
    def _exactly_one_of_name_or_names(self) -> ClassifyRequest:
        if (self.name is None) == (self.names is None):
            given = "both" if self.name is not None else "neither"
            raise PydanticCustomError(
                "name_or_names", "give exactly one of 'name' or 'names' (got {given})", {"given": given}
            )
        return self

    @model_validator(mode="after")
    def _explain_labels_need_explain(self) -> ClassifyRequest:
        if self.explain_labels is not None and not self.explain:
            raise PydanticCustomError("explain_labels_without_explain", "explain_labels needs explain: true")
        return self

    @property
    def name_batch(self) -> list[str]:
        """The names to classify, in input order, whichever form the request used."""
        return [self.name] if self.name is not None else list(self.names or [])


class Prediction(BaseModel):
    label: str
    probability: float = Field(description="in [0, 1]; over all labels they sum to 1")
    log_probability: float = Field(description="natural log of `probability`, as the network computed it")


class Fragment(BaseModel):
    """A piece of the name as written (a character, with its combining marks) and its occlusion score."""

    text: str
    score: float = Field(
        description="the label's probability with this piece minus without it: > 0 raised it, < 0 lowered it"
    )


class TokenResult(BaseModel):
    """One part of a full name (a surname, a given name), classified on its own."""

    text: str = Field(description="the part as written")
    read_as: str = Field(description="the lower-case Latin text the network read for it")
    script: str
    predictions: list[Prediction] = Field(description="its own top-k labels; empty when it abstains")
    abstained: bool
    reason: AbstainReason | None


class NameResult(BaseModel):
    """The top-k labels of one name, most probable first, or an abstention with its reason."""

    name: str = Field(description="the name exactly as sent")
    predictions: list[Prediction] = Field(
        description="top-k labels, most probable first; empty when the name abstains (except for `low-confidence`)"
    )
    abstained: bool = Field(description="true when the service gives no answer for this name; `reason` says why")
    reason: AbstainReason | None = Field(
        description=(
            "why it abstained: `no-letters`, `unsupported-script` (written in a script no label uses, e.g. Devanagari), "
            "`unsupported-letters` (letters no label's spelling uses, e.g. Turkish ı), `too-long`, `not-a-name` "
            "(unlike any name, letters mixed with digits such as R2D2, or a placeholder such as N/A), `low-confidence` (below `min_probability`)"
        )
    )
    read_as: str = Field(
        description="the lower-case Latin text the network read (Japanese and Korean by their own readers)"
    )
    script: str = Field(description="the writing system(s) the name is written in: Latin, Cyrillic, Han+Hiragana, ...")
    tokens: list[TokenResult] = Field(
        description="for a full name, each part and its own top labels; the answer combines them. Empty for one name"
    )
    explained_label: str | None = Field(
        None, description="only with `explain`: the label `explanation` explains (the top one); null when abstained"
    )
    explanation: list[Fragment] | None = Field(
        None,
        description=(
            "only with `explain`: the name as written (cleaned: NFKC, spaces collapsed), piece by piece in order, "
            "each with how much it raised the top label's probability; a full name is explained as a whole; "
            "spaces score 0; null when abstained"
        ),
    )
    explanation_words: list[Fragment] | None = Field(
        None,
        description=(
            "only with `explain`: for a name of several words, each word (split at spaces, as written) scored as a "
            "whole, removed with its space; empty for one word; null when abstained"
        ),
    )
    explanations: dict[str, list[Fragment]] | None = Field(
        None, description="only with `explain_labels`: the same for each label asked for; null when abstained"
    )


class ClassifyResponse(NameResult):
    """Answer to a request with `name`."""

    model_config = ConfigDict(json_schema_extra={"examples": [SINGLE_RESPONSE_EXAMPLE, EXPLAINED_RESPONSE_EXAMPLE]})

    model_id: str = Field(description="the checkpoint that answered (see GET /model)")


class BatchClassifyResponse(BaseModel):
    """Answer to a request with `names`: one result per name, in input order."""

    model_config = ConfigDict(json_schema_extra={"examples": [BATCH_RESPONSE_EXAMPLE]})

    results: list[NameResult]
    model_id: str = Field(description="the checkpoint that answered (see GET /model)")


class ModelCard(BaseModel):
    """What is being served: identity, architecture, labels, evaluation and data provenance."""

    id: str = Field(
        description="model id: architecture plus a digest of the weights and everything that shapes the answers"
    )
    architecture: str
    network: dict[str, Any] = Field(description="the network config saved in the checkpoint")
    labels: list[str] = Field(description="every label the model can answer, in the checkpoint's order")
    num_labels: int
    max_name_length: int = Field(description="characters the model reads per name, after transliteration")
    metrics: dict[str, Any] = Field(
        description="evaluation saved at training time, per split; `metrics_note` says which network each is of"
    )
    metrics_note: str | None = Field(
        None, description="for a network refit on train + val: val is the held-out run's, test the served network's"
    )
    data_fingerprint: str | None = Field(description="hash of the training data the model was fitted on")
    split_rule: Any = None
    training: Any = None
    torch_version: str | None = None
    created_at: str | None = None
    device: str = Field(description="where the network runs: cpu or cuda")
    intended_use: str = Field(description="what the model is for (MODEL_CARD.md)")
    out_of_scope: list[str] = Field(description="uses it is not for; a name is not a person's nationality or ethnicity")
    known_limitations: list[str] = Field(description="where it is known to fail")


class StatusResponse(BaseModel):
    status: str = Field(examples=["ok"])


class FieldError(BaseModel):
    field: str = Field(
        description="which part of the request: a body field such as `top_k` or `names[2]`, `body`, or a header"
    )
    message: str
    type: str = Field(
        description="machine-readable kind of problem, e.g. `unreadable_name`, `extra_forbidden`, `missing`"
    )


class ErrorResponse(BaseModel):
    """Body of every 4xx/503 answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_request",
                    "message": "the request is not valid; see errors",
                    "errors": [
                        {
                            "field": "names[1]",
                            "message": "name is 70 characters; at most 64 are accepted",
                            "type": "name_too_long",
                        }
                    ],
                }
            ]
        }
    )

    error: str = Field(
        description="short code: invalid_request, unsupported_media_type, body_too_large, overloaded, not_ready, ..."
    )
    message: str
    errors: list[FieldError] = Field(default_factory=list)
