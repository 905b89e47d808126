"""The HTTP endpoints: thin functions that check a request, hand names to the batcher, shape the answer.

No tensor reaches this module: the batcher returns `RankedNames`, plain lists of label ids,
probabilities and abstention reasons, which become the JSON answer here without an object per
label in between.
"""

from __future__ import annotations

import functools
import itertools
from importlib import resources
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.dependencies import Service, get_metrics, get_service, get_settings, require_json_body
from app.json_body import validated_body
from app.model_card import INTENDED_USE, KNOWN_LIMITATIONS, OUT_OF_SCOPE
from app.observability import Metrics, record_names
from app.openapi import REQUEST_SCHEMA
from app.schemas import (
    BATCH_RESPONSE_EXAMPLE,
    EXPLAINED_RESPONSE_EXAMPLE,
    SINGLE_RESPONSE_EXAMPLE,
    BatchClassifyResponse,
    ClassifyRequest,
    ClassifyResponse,
    ErrorResponse,
    ModelCard,
    StatusResponse,
)
from app.validation import FieldProblem, InvalidRequestError, check_classify_request
from model.explain import Explanation
from model.predictor import RankedNames, RankedToken, RankQuery

PING_BODY = b'{"status":"ok"}'

CLASSIFY_DESCRIPTION = """\
Send **exactly one** of `name` (answered as `{name, predictions, abstained, reason, read_as,
script, tokens, model_id}`) or `names` (answered as `{results: [...], model_id}`, one result per
name, in input order).

`top_k` (default 3) is how many labels come back per name, most probable first; it may be at most
the number of labels (see `GET /model`). Probabilities over *all* labels sum to 1.

**Any case, any script, full names.** `SMITH`, `smith` and `Smith` get the same answer. A name in
Hangul, kana, Han, Greek, Cyrillic or Arabic letters is read by the right reader (`read_as`), and
its script and letters (ł, ř, ñ, ß, ễ, ...) count as evidence for the labels written with them.
A full name (`Nguyen Van Minh`, `Tanaka, Hiroshi`, `Mrs. Anna van der Berg`) is split into parts:
titles, suffixes and initials are dropped, particles stay with their surname, and the parts'
evidence is combined into one answer; `tokens` lists each part with its own top labels.

**No answer is an answer.** A name the model cannot answer comes back in its place with
`abstained: true`, a `reason` and no predictions (HTTP 200), so one bad row never sinks the rest:
`no-letters` (`"123"`), `unsupported-script` (Devanagari, Thai, Hebrew, ...), `unsupported-letters`
(Turkish ı, Danish ø, ...), `too-long`, `not-a-name` (keyboard mash, random letters, letters mixed with
digits such as `R2D2`, placeholders such as `N/A` or `Test User`, companies such as `Acme Ltd`), `control-characters` (NUL or any control character but tab, LF, CR), or
`low-confidence` (the top probability is below your `min_probability`; the predictions are still
shown). Structural problems (wrong types, an empty string, too many names,
a name over the length limit, an unknown label in `prior`) reject the request with 422.

**Why.** With `explain: true`, each answered name also carries `explanation`: the name as written,
character by character (a character with its accents; a kanji; a Hangul syllable), each with
`score`, how much it raised (+) or lowered (-) the top label's probability, found by exact
occlusion: the name is answered again with that character removed, every variant of every name in
one batched pass. Scores belong to the characters as written, before transliteration (`read_as`),
so the `ễ` of `Nguyễn` carries its letter evidence too. A full name is explained as a whole; spaces
score 0, and `explanation_words` scores each of its words removed whole (empty for one word).
`explain_labels: ["Chinese", "Japanese"]` adds `explanations` for those labels. Abstained names
carry none. It costs about one extra row of work per character.

**Prior.** `prior: "dataset"` (default) answers under the training data's label frequencies,
`"uniform"` as if every label were equally likely, and `{"English": 3, "Spanish": 1}` under your
own population (labels left out are never answered).

All names of a request run in one model call, and concurrent requests are coalesced into
micro-batches. 503 (with `Retry-After`) means the request queue is full or the model is not ready.
"""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "the body cannot be decoded: not UTF-8 (UTF-16, UTF-32, latin-1, a byte order mark, invalid "
        "bytes), nested too deeply, an integer of more than 20 digits, a number out of range, NaN or Infinity; "
        "`errors` says which",
    },
    413: {"model": ErrorResponse, "description": "body larger than the limit"},
    415: {
        "model": ErrorResponse,
        "description": "Content-Type is not application/json (or application/*+json), or the body is compressed",
    },
    422: {
        "model": ErrorResponse,
        "description": "invalid request (malformed JSON, a key given twice in one object, a bad field); `errors` "
        "names every problem of the body's shape and types, or, once those are right, every name over a limit "
        "and every unknown label (the two are checked in turn)",
    },
    503: {"model": ErrorResponse, "description": "queue full or model not ready; retry after `Retry-After` seconds"},
}

REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "one name": {"summary": "one name", "value": {"name": "Hinton", "top_k": 3}},
    "an explanation": {
        "summary": "why: how much each character raised or lowered the top label",
        "value": {"name": "Nguyễn", "top_k": 1, "explain": True},
    },
    "several names": {
        "summary": "full names, native scripts and junk, answered in input order",
        "value": {"names": ["Nguyen Van Minh", "김", "qwerty"], "top_k": 1},
    },
    "a prior": {
        "summary": "every label equally likely a priori, abstain below 50%",
        "value": {"name": "Tanaka", "prior": "uniform", "min_probability": 0.5},
    },
    "a bad request": {
        "summary": "422: a name over the length limit and an unknown label in the prior",
        "value": {"names": ["Hinton", "x" * 70], "prior": {"Klingon": 1}},
    },
}

# The request body as FastAPI would document a `ClassifyRequest` parameter (app.openapi adds the model's
# schema to the components and the server's limits to it).
CLASSIFY_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"$ref": f"#/components/schemas/{REQUEST_SCHEMA}"},
            "examples": REQUEST_EXAMPLES,
        }
    },
}

RESPONSE_EXAMPLES: dict[str, dict[str, Any]] = {
    "one name": {"summary": "answer to {name}", "value": SINGLE_RESPONSE_EXAMPLE},
    "several names": {"summary": "answer to {names}", "value": BATCH_RESPONSE_EXAMPLE},
    "an explanation": {"summary": "answer to {name, explain: true}", "value": EXPLAINED_RESPONSE_EXAMPLE},
}

router = APIRouter()


def _predictions(
    labels: tuple[str, ...], ids: list[int], probs: list[float], log_probs: list[float]
) -> list[dict[str, Any]]:
    """A full name's part's `LabelResult`s, most probable first; `_name_results` builds the same dicts
    for a whole batch of names in one pass."""
    return [
        {"label": labels[label_id], "probability": probability, "log_probability": log_probability}
        for label_id, probability, log_probability in zip(ids, probs, log_probs, strict=True)
    ]


def _name_results(
    names: list[str], ranked: RankedNames, labels: tuple[str, ...], explain_labels: list[str] | None = None
) -> list[dict[str, Any]]:
    """Each name's answer as `NameResult` lays it out, in input order. Every label dict of the batch
    is built in one comprehension over the flattened columns, then dealt out to the names in turn,
    rather than by a call per name (docs/benchmarks.md, "Answer serialization")."""
    label_dicts = iter(
        [
            {"label": label, "probability": probability, "log_probability": log_probability}
            for label, probability, log_probability in zip(
                map(labels.__getitem__, itertools.chain.from_iterable(ranked.label_ids)),
                itertools.chain.from_iterable(ranked.probabilities),
                itertools.chain.from_iterable(ranked.log_probabilities),
                strict=True,
            )
        ]
    )
    predictions = [list(itertools.islice(label_dicts, len(ids))) for ids in ranked.label_ids]
    results = [
        {
            "name": name,
            "predictions": name_predictions,
            "abstained": reason is not None,
            "reason": reason,
            "read_as": read_as,
            "script": script,
            "tokens": [_token_result(token, labels) for token in tokens] if tokens else [],
        }
        for name, name_predictions, reason, read_as, script, tokens in zip(
            names, predictions, ranked.reasons, ranked.read_as, ranked.scripts, ranked.tokens, strict=True
        )
    ]
    if ranked.explanations:  # only when the request asked for them
        for result, explanation in zip(results, ranked.explanations, strict=True):
            result.update(_explanation_result(explanation, labels, explain_labels))
    return results


def _explanation_result(
    explanation: Explanation | None, labels: tuple[str, ...], explain_labels: list[str] | None
) -> dict[str, Any]:
    """`explained_label` and `explanation` (the top label's), and `explanations` when labels were asked for."""
    answer: dict[str, Any] = {"explained_label": None, "explanation": None, "explanation_words": None}
    if explain_labels is not None:
        answer["explanations"] = None
    if explanation is None:  # the name abstained
        return answer
    by_label = {
        labels[label_id]: [
            {"text": text, "score": score} for text, score in zip(explanation.fragments, scores, strict=True)
        ]
        for label_id, scores in zip(explanation.label_ids, explanation.scores, strict=True)
    }
    top = labels[explanation.label_ids[0]]
    words = explanation.word_scores[0] if explanation.words else ()
    answer.update(
        explained_label=top,
        explanation=by_label[top],
        explanation_words=[
            {"text": text, "score": score} for text, score in zip(explanation.words, words, strict=True)
        ],
    )
    if explain_labels is not None:
        answer["explanations"] = {label: by_label[label] for label in explain_labels}
    return answer


def _token_result(token: RankedToken, labels: tuple[str, ...]) -> dict[str, Any]:
    """One part of a full name as `TokenResult` lays it out."""
    return {
        "text": token.text,
        "read_as": token.read_as,
        "script": token.script,
        "predictions": _predictions(labels, token.label_ids, token.probabilities, token.log_probabilities),
        "abstained": token.reason is not None,
        "reason": token.reason,
    }


@router.post(
    "/classify",
    operation_id="classify",
    summary="Guess where one name, or many, come from",
    description=CLASSIFY_DESCRIPTION,
    response_model=ClassifyResponse | BatchClassifyResponse,
    responses={200: {"content": {"application/json": {"examples": RESPONSE_EXAMPLES}}}, **ERROR_RESPONSES},
    openapi_extra={"requestBody": CLASSIFY_REQUEST_BODY},
)
async def classify(request: Request) -> Response:
    # The body and the service are read here rather than declared as parameters: FastAPI's dependency
    # and body machinery costs more than the rest of the route for one name (docs/benchmarks.md,
    # "Route body reading"). The order of refusals is FastAPI's: 415, then 503 when no model is
    # ready, then 400/422 for the body.
    await require_json_body(request)
    service = await get_service(request)
    settings = await get_settings(request)
    body = await validated_body(request, ClassifyRequest)
    if request.scope["query_string"]:  # POST /classify?top_k=5 was answered with the default top_k
        query_string = request.scope["query_string"].decode("latin-1")
        message = f"the query string is not read ({query_string[:100]!r}); send top_k, prior and the rest in the body"
        raise InvalidRequestError([FieldProblem("query", message, "query_not_read")])
    name_batch = body.name_batch
    record_names(request, name_batch)
    predictor = service.predictor
    check_classify_request(
        name_batch,
        batch_form=body.names is not None,
        top_k=body.top_k,
        prior=body.prior,
        predictor=predictor,
        max_names_per_request=settings.max_names_per_request,
        max_name_length=settings.max_name_length,
        explain_labels=body.explain_labels,
    )
    explain_labels = tuple(body.explain_labels or ())
    query = RankQuery(body.top_k, body.prior, body.min_probability, body.explain, explain_labels)
    ranked, answered_by = await service.batcher.answer(name_batch, query, client_gone=request.is_disconnected)
    # The model that ran the batch, which a hot reload may have swapped in since the checks above
    # (a reload keeps the labels, so those checks still hold).
    results = _name_results(name_batch, ranked, answered_by.labels, body.explain_labels)
    model_id = answered_by.model_id
    answer = (
        {**results[0], "model_id": model_id} if body.name is not None else {"results": results, "model_id": model_id}
    )
    # Probabilities come out of a log-softmax and are always finite; orjson would write NaN or inf as null.
    # Serialized straight to JSON bytes: building and re-validating response models costs far more than
    # the JSON for a large batch (docs/benchmarks.md, "Answer serialization"). The response models still
    # document the shape, and tests validate real answers against them.
    return Response(orjson.dumps(answer), media_type="application/json")


@router.get("/healthz", summary="Liveness: 200 while the process runs", response_model=StatusResponse)
async def healthz() -> StatusResponse:
    return StatusResponse(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: 200 once the model is loaded and warmed up, else 503",
    response_model=StatusResponse,
    responses={503: {"model": ErrorResponse, "description": "not loaded, warming up, or shutting down"}},
)
async def readyz(service: Annotated[Service, Depends(get_service)]) -> StatusResponse:
    return StatusResponse(status="ready")


@router.get(
    "/model",
    summary="Model card of the checkpoint being served",
    response_model=ModelCard,
    responses={503: {"model": ErrorResponse, "description": "model not ready"}},
)
async def model_card(service: Annotated[Service, Depends(get_service)]) -> ModelCard:
    predictor = service.predictor
    checkpoint = predictor.checkpoint
    info = checkpoint.info
    return ModelCard(
        id=checkpoint.model_id,
        architecture=checkpoint.network_config.architecture,
        network=checkpoint.network_config.to_dict(),
        labels=list(predictor.labels),
        num_labels=predictor.num_labels,
        max_name_length=checkpoint.encoder_config.max_length,
        metrics=info.get("metrics", {}),
        metrics_note=info.get("metrics_note"),
        data_fingerprint=info.get("data_fingerprint"),
        split_rule=info.get("split_rule"),
        training=info.get("training"),
        torch_version=info.get("torch_version"),
        created_at=info.get("created_at"),
        device=str(predictor.device),
        intended_use=INTENDED_USE,
        out_of_scope=list(OUT_OF_SCOPE),
        known_limitations=list(KNOWN_LIMITATIONS),
    )


@router.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=Response)
async def metrics(metrics: Annotated[Metrics, Depends(get_metrics)]) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.post("/ping", include_in_schema=False)
async def ping(request: Request) -> Response:
    """Reads the body and answers a constant, never touching the model: the HTTP stack's ceiling."""
    await request.body()
    return Response(PING_BODY, media_type="application/json")


@router.get("/", include_in_schema=False)
async def index_page() -> HTMLResponse:
    return HTMLResponse(_index_html())


@functools.cache
def _index_html() -> str:
    return resources.files("app").joinpath("static/index.html").read_text(encoding="utf-8")
