"""The HTTP contract of app/, through the in-process client: answers, model card, probes, errors."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import random
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from app.body_limit import BodySizeLimitMiddleware
from app.errors import BodyTooLargeError
from app.main import create_app
from app.observability import JsonFormatter
from app.schemas import (
    BATCH_RESPONSE_EXAMPLE,
    EXPLAINED_RESPONSE_EXAMPLE,
    SINGLE_RESPONSE_EXAMPLE,
    BatchClassifyResponse,
    ClassifyResponse,
)
from app.settings import Settings
from model.checkpoint import CheckpointError, load_checkpoint
from model.predictor import DEFAULT_CHECKPOINT_PATH, Predictor
from tests.conftest import TINY_FINGERPRINT, TINY_LABELS, TINY_METRICS

MIXED_NAMES = ["Hinton", "Nguyễn", "王", "Schmidhuber", "O'Neil", "Dvořák", "123", "Anna van der Berg"]


def only_error(response, status_code: int) -> dict:
    """The single FieldError of an error answer, after checking status and body shape."""
    assert response.status_code == status_code, response.text
    body = response.json()
    assert set(body) == {"error", "message", "errors"}
    assert len(body["errors"]) == 1, body
    return body["errors"][0]


# --- answers -----------------------------------------------------------------------------------


def test_classify_single_name_returns_name_sorted_predictions_and_model_id(client, tiny_checkpoint):
    response = client.post("/classify", json={"name": "Hinton", "top_k": 2})
    assert response.status_code == 200
    body = response.json()
    ClassifyResponse.model_validate(body)  # the documented schema is what is sent
    assert body["name"] == "Hinton"
    assert body["model_id"] == load_checkpoint(tiny_checkpoint).model_id
    probabilities = [prediction["probability"] for prediction in body["predictions"]]
    assert len(probabilities) == 2
    assert probabilities == sorted(probabilities, reverse=True)
    for prediction in body["predictions"]:
        assert prediction["label"] in TINY_LABELS
        assert prediction["log_probability"] == pytest.approx(math.log(prediction["probability"]), abs=1e-6)


def test_classify_top_k_defaults_to_three(client):
    body = client.post("/classify", json={"name": "Hinton"}).json()
    assert len(body["predictions"]) == 3


def test_classify_probabilities_over_all_labels_sum_to_one(client):
    body = client.post("/classify", json={"name": "Hinton", "top_k": len(TINY_LABELS)}).json()
    assert {prediction["label"] for prediction in body["predictions"]} == set(TINY_LABELS)
    assert sum(prediction["probability"] for prediction in body["predictions"]) == pytest.approx(1.0, abs=1e-6)


def test_classify_batch_answers_every_name_in_input_order_as_the_predictor_does(client, tiny_checkpoint):
    response = client.post("/classify", json={"names": MIXED_NAMES, "top_k": 3})
    assert response.status_code == 200
    BatchClassifyResponse.model_validate(response.json())  # the documented schema is what is sent
    results = response.json()["results"]
    assert [result["name"] for result in results] == MIXED_NAMES
    expected = Predictor.from_path(tiny_checkpoint, device="cpu").predict(MIXED_NAMES, top_k=3)
    for result, prediction in zip(results, expected, strict=True):
        assert [p["label"] for p in result["predictions"]] == [p.label for p in prediction.predictions]
        assert [p["probability"] for p in result["predictions"]] == pytest.approx(
            [p.probability for p in prediction.predictions], abs=1e-5
        )
        assert (result["abstained"], result["reason"], result["read_as"], result["script"]) == (
            prediction.abstained,
            prediction.reason,
            prediction.read_as,
            prediction.script,
        )
        assert [token["text"] for token in result["tokens"]] == [token.text for token in prediction.tokens]


def test_classify_batch_of_one_name_still_answers_as_results(client):
    body = client.post("/classify", json={"names": ["Hinton"]}).json()
    assert set(body) == {"results", "model_id"}
    assert body["results"][0]["name"] == "Hinton"


def test_classify_smaller_top_k_is_a_prefix_of_larger(client):
    top_one = client.post("/classify", json={"name": "Rossi", "top_k": 1}).json()["predictions"]
    top_three = client.post("/classify", json={"name": "Rossi", "top_k": 3}).json()["predictions"]
    assert top_one == top_three[:1]


def test_classify_accepts_json_content_type_with_charset_or_plus_json_suffix(client):
    for content_type in ("application/json; charset=utf-8", "application/vnd.nameorigin+json"):
        response = client.post("/classify", content=b'{"name": "Hinton"}', headers={"Content-Type": content_type})
        assert response.status_code == 200, content_type


@pytest.mark.timeout(60)
def test_classify_with_shipped_checkpoint_uses_its_labels_and_keeps_order(make_client):
    default_client = make_client(checkpoint_path=DEFAULT_CHECKPOINT_PATH)
    card = default_client.get("/model").json()
    labels = card["labels"]
    assert labels == list(load_checkpoint(DEFAULT_CHECKPOINT_PATH).labels)
    assert "held-out run" in card["metrics_note"]  # the shipped network was refit: val is not its own
    results = default_client.post("/classify", json={"names": MIXED_NAMES, "top_k": len(labels)}).json()["results"]
    assert [result["name"] for result in results] == MIXED_NAMES
    assert [result["reason"] for result in results] == [None] * 6 + ["no-letters", None]
    for result in results[:6] + results[7:]:
        probabilities = [prediction["probability"] for prediction in result["predictions"]]
        assert {prediction["label"] for prediction in result["predictions"]} == set(labels)
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


# --- model card, probes, metrics, docs, page, ping ----------------------------------------------


def test_model_card_reports_the_checkpoint_and_device(client, tiny_checkpoint):
    card = client.get("/model").json()
    assert card["id"] == load_checkpoint(tiny_checkpoint).model_id
    assert card["architecture"] == "gru"
    assert card["network"]["hidden_size"] == 8
    assert card["labels"] == list(TINY_LABELS)
    assert card["num_labels"] == len(TINY_LABELS)
    assert card["metrics"] == TINY_METRICS
    assert card["metrics_note"] is None  # not refit
    assert card["data_fingerprint"] == TINY_FINGERPRINT
    assert card["device"] == "cpu"
    assert card["max_name_length"] == 64
    assert "surname" in card["intended_use"]
    assert any("not a person's nationality" in line for line in card["out_of_scope"])
    assert card["known_limitations"]


def test_healthz_and_readyz_answer_200_once_started(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_and_classify_answer_503_before_the_model_is_loaded(tiny_checkpoint):
    not_started = TestClient(create_app(Settings(checkpoint_path=tiny_checkpoint)))  # no `with`: no lifespan
    assert not_started.get("/healthz").status_code == 200
    for response in (not_started.get("/readyz"), not_started.post("/classify", json={"name": "Hinton"})):
        assert response.status_code == 503
        assert response.json()["error"] == "not_ready"
        assert response.headers["Retry-After"] == "1"


@pytest.mark.usefixtures("kept_root_logging")
def test_the_service_collects_young_objects_less_often_while_it_serves_and_restores_the_threshold(tiny_checkpoint):
    """A 1000-name request's lists and dicts should die by reference counting, not be walked by the
    collector a dozen times (app.main.YOUNG_COLLECTION_THRESHOLD); a process that stops the app gets
    its own thresholds back, and its heap unfrozen."""
    import gc

    from app.main import YOUNG_COLLECTION_THRESHOLD

    before = gc.get_threshold()
    with TestClient(create_app(Settings(checkpoint_path=tiny_checkpoint))) as started:
        assert started.get("/readyz").status_code == 200
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("kept_root_logging")
def test_a_failed_stop_still_unfreezes_the_heap_and_restores_the_threshold(tiny_checkpoint, monkeypatch):
    import gc

    from app.batching import MicroBatcher

    async def failing_stop(self: MicroBatcher) -> None:
        raise RuntimeError("the batcher failed to stop")

    monkeypatch.setattr(MicroBatcher, "stop", failing_stop)
    before = gc.get_threshold()
    with (
        pytest.raises(RuntimeError, match="failed to stop"),
        TestClient(create_app(Settings(checkpoint_path=tiny_checkpoint))) as started,
    ):
        assert started.get("/readyz").status_code == 200
        assert gc.get_threshold() != before
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_create_app_loads_no_model_until_lifespan(tmp_path, make_client):
    app = create_app(Settings(checkpoint_path=tmp_path / "missing.safetensors"))  # building it must not fail
    assert app.title == "nameorigin"
    with pytest.raises(CheckpointError, match=r"missing\.safetensors"):
        make_client(checkpoint_path=tmp_path / "missing.safetensors")


def test_metrics_count_requests_names_and_batches(client):
    client.post("/classify", json={"names": ["Hinton", "Rossi", "Wang"]})
    client.post("/classify", json={"name": "123"})  # abstains: still an answer
    client.post("/classify", json={"name": "Hinton", "top_k": 99})
    text = client.get("/metrics").text
    assert 'nameorigin_http_requests_total{method="POST",path="/classify",status="200"} 2.0' in text
    assert 'nameorigin_http_requests_total{method="POST",path="/classify",status="422"} 1.0' in text
    assert 'nameorigin_http_request_duration_seconds_count{method="POST",path="/classify"} 3.0' in text
    assert "nameorigin_names_classified_total 4.0" in text  # warm-up names are not counted
    assert "nameorigin_request_names_sum 4.0" in text  # answered requests only: the 422 carried one more
    assert "nameorigin_batch_names_sum 4.0" in text
    assert "nameorigin_ready 1.0" in text


def test_metrics_of_one_process_carry_its_memory_and_open_files_and_the_model_id(client):
    text = client.get("/metrics").text
    assert re.search(r"^process_resident_memory_bytes [1-9]", text, re.M)
    assert re.search(r"^process_open_fds [1-9]", text, re.M)
    assert 'nameorigin_model_info{architecture="gru",device="cpu",id="nameorigin-gru-' in text


def test_metrics_label_unknown_paths_as_unmatched(client):
    client.get("/no/such/path/Hinton")
    text = client.get("/metrics").text
    assert 'path="unmatched",status="404"' in text
    assert "Hinton" not in text


def test_openapi_documents_classify_examples_abstention_and_prior(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/classify"]["post"]
    assert "abstained: true" in operation["description"] and "not-a-name" in operation["description"]
    assert set(operation["requestBody"]["content"]["application/json"]["examples"]) == {
        "one name",
        "an explanation",
        "several names",
        "a prior",
        "a bad request",
    }
    assert "an explanation" in operation["responses"]["200"]["content"]["application/json"]["examples"]
    request_schema = schema["components"]["schemas"]["ClassifyRequest"]["properties"]
    assert {"prior", "min_probability", "explain", "explain_labels"} <= set(request_schema)
    result_schema = schema["components"]["schemas"]["NameResult"]["properties"]
    assert {"abstained", "reason", "read_as", "script", "tokens", "explanation", "explained_label"} <= set(
        result_schema
    )
    assert set(schema["components"]["schemas"]["Fragment"]["properties"]) == {"text", "score"}
    assert {"200", "413", "415", "422", "503"} <= set(operation["responses"])
    answer_schemas = operation["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    assert {schema["$ref"].rsplit("/", 1)[1] for schema in answer_schemas} == {
        "ClassifyResponse",
        "BatchClassifyResponse",
    }
    assert "/ping" not in schema["paths"]
    assert client.get("/docs").status_code == 200


def test_openapi_carries_every_limit_the_server_enforces(make_client):
    settings_limits = {"max_names_per_request": 7, "max_name_length": 20}
    client = make_client(**settings_limits)
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/classify"]["post"]
    assert operation["operationId"] == "classify"
    assert {"400", "413", "415", "422", "503"} <= set(operation["responses"])
    request = schema["components"]["schemas"]["ClassifyRequest"]
    properties = request["properties"]
    names = next(branch for branch in properties["names"]["anyOf"] if branch.get("type") == "array")
    name = next(branch for branch in properties["name"]["anyOf"] if branch.get("type") == "string")
    assert (names["maxItems"], names["items"]["maxLength"], name["maxLength"]) == (7, 20, 20)
    num_labels = client.get("/model").json()["num_labels"]
    assert properties["top_k"]["maximum"] == num_labels
    assert [branch["required"] for branch in request["oneOf"]] == [["name"], ["names"]]
    # What the schema refuses, the server refuses.
    too_many = client.post("/classify", json={"names": ["Li"] * 8})
    too_long = client.post("/classify", json={"name": "x" * 21})
    too_high = client.post("/classify", json={"name": "Li", "top_k": num_labels + 1})
    both = client.post("/classify", json={"name": "Li", "names": ["Li"]})
    assert [r.status_code for r in (too_many, too_long, too_high, both)] == [422] * 4


def test_docs_pages_load_their_scripts_from_this_server_not_a_cdn(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
        assert assets, page
        assert all(asset.startswith("/") for asset in assets), assets  # same host: nothing from a CDN
        assert all(client.get(asset).status_code == 200 for asset in assets)


def test_index_page_is_self_contained_html(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<textarea" in response.text and "/classify" in response.text
    assert "://" not in response.text  # nothing fetched from another host: works offline


def test_ping_answers_constant_json_for_any_body_without_a_model(tiny_checkpoint):
    not_started = TestClient(create_app(Settings(checkpoint_path=tiny_checkpoint)))
    for content, content_type in (
        (b"", "text/plain"),
        (b"not json", "application/octet-stream"),
        (b'{"a": 1}', "application/json"),
    ):
        response = not_started.post("/ping", content=content, headers={"Content-Type": content_type})
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


# --- bad input: 4xx with a JSON body naming the field ----------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field", "error_type"),
    [
        ({"name": "Hinton", "names": ["Rossi"]}, "body", "name_or_names"),
        ({}, "body", "name_or_names"),
        ({"name": None}, "body", "name_or_names"),
        ({"name": 123}, "name", "string_type"),
        ({"names": "Hinton"}, "names", "list_type"),
        ({"names": ["Hinton", 5]}, "names[1]", "string_type"),
        ({"name": "Hinton", "top_k": "3"}, "top_k", "int_type"),
        ({"name": "Hinton", "top_k": 2.5}, "top_k", "int_type"),
        ({"names": []}, "names", "too_short"),
        ({"name": ""}, "name", "string_too_short"),
        ({"names": ["Hinton", ""]}, "names[1]", "string_too_short"),
        ({"name": "Hinton", "top_k": 0}, "top_k", "greater_than_equal"),
        ({"name": "Hinton", "top_k": 4}, "top_k", "top_k_too_large"),
        ({"name": "Hinton", "nam": "x"}, "nam", "extra_forbidden"),
        ({"name": "a" * 65}, "name", "name_too_long"),
        ({"name": "Hinton", "prior": "population"}, "prior", "invalid_prior"),
        ({"name": "Hinton", "prior": {"Klingon": 1.0}}, "prior", "invalid_prior"),
        ({"name": "Hinton", "prior": {"A": 0, "B": 0, "C": 0}}, "prior", "invalid_prior"),
        ({"name": "Hinton", "min_probability": 1.5}, "min_probability", "less_than_equal"),
        ({"name": "Hinton", "min_probability": "0.5"}, "min_probability", "float_type"),
    ],
)
def test_classify_rejects_bad_input_with_422_naming_the_field(client, payload, field, error_type):
    error = only_error(client.post("/classify", json=payload), 422)
    assert (error["field"], error["type"]) == (field, error_type)
    assert error["message"]


@pytest.fixture
def shipped_client(make_client):
    return make_client(checkpoint_path=DEFAULT_CHECKPOINT_PATH)


def test_classify_abstains_on_unreadable_names_in_their_place(shipped_client):
    # Щ is four letters in Latin: 20 of them pass the length limit (20 characters as read) and the
    # network reads 80; the tiny checkpoint has no label written in Cyrillic
    names = ["Hinton", "123", "Rossi", "!!!", "Щ" * 20, "नरेंद्र", "Yılmaz", "   "]
    response = shipped_client.post("/classify", json={"names": names})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["name"] for result in results] == names
    assert [result["reason"] for result in results] == [
        None,
        "no-letters",
        None,
        "no-letters",
        "too-long",
        "unsupported-script",
        "unsupported-letters",
        "no-letters",
    ]
    for result in results:
        assert result["abstained"] == (result["reason"] is not None)
        assert (len(result["predictions"]) == 3) == (not result["abstained"])


def test_classify_abstains_below_min_probability_and_still_shows_the_labels(client):
    body = client.post("/classify", json={"name": "Hinton", "min_probability": 1.0}).json()
    assert body["abstained"] and body["reason"] == "low-confidence" and len(body["predictions"]) == 3
    assert not client.post("/classify", json={"name": "Hinton", "min_probability": 0.0}).json()["abstained"]


def test_classify_answers_under_the_prior_asked_for(client):
    only_two = client.post("/classify", json={"name": "Hinton", "prior": {"A": 1, "C": 2}, "top_k": 3}).json()
    assert {p["label"] for p in only_two["predictions"]} == {"A", "C"}
    uniform = client.post("/classify", json={"name": "Hinton", "prior": "uniform", "top_k": 3}).json()
    dataset = client.post("/classify", json={"name": "Hinton", "top_k": 3}).json()
    assert uniform["predictions"] == dataset["predictions"]  # the tiny checkpoint's stored prior is uniform


def test_classify_full_name_lists_its_parts(client):
    body = client.post("/classify", json={"name": "Mrs. Anna van der Berg", "top_k": 1}).json()
    assert [token["text"] for token in body["tokens"]] == ["Anna", "van der Berg"]
    assert body["read_as"] == "anna van der berg"
    assert all(len(token["predictions"]) == 1 for token in body["tokens"])
    assert client.post("/classify", json={"name": "Berg"}).json()["tokens"] == []


def test_classify_examples_in_the_schema_are_answers_of_the_shipped_model(make_client):
    shipped = make_client(checkpoint_path=DEFAULT_CHECKPOINT_PATH)
    single = shipped.post("/classify", json={"name": SINGLE_RESPONSE_EXAMPLE["name"]}).json()
    assert single["model_id"] == SINGLE_RESPONSE_EXAMPLE["model_id"] == BATCH_RESPONSE_EXAMPLE["model_id"]
    assert [p["label"] for p in single["predictions"]] == [p["label"] for p in SINGLE_RESPONSE_EXAMPLE["predictions"]]
    assert [round(p["probability"], 4) for p in single["predictions"]] == [
        p["probability"] for p in SINGLE_RESPONSE_EXAMPLE["predictions"]
    ]
    names = [result["name"] for result in BATCH_RESPONSE_EXAMPLE["results"]]
    batch = shipped.post("/classify", json={"names": names, "top_k": 1}).json()["results"]
    for answer, example in zip(batch, BATCH_RESPONSE_EXAMPLE["results"], strict=True):
        assert (answer["reason"], answer["read_as"], answer["script"]) == (
            example["reason"],
            example["read_as"],
            example["script"],
        )
        assert [(p["label"], round(p["probability"], 2)) for p in answer["predictions"]] == [
            (p["label"], p["probability"]) for p in example["predictions"]
        ]
        assert [(t["text"], t["predictions"][0]["label"]) for t in answer["tokens"]] == [
            (t["text"], t["predictions"][0]["label"]) for t in example["tokens"]
        ]


def test_classify_explanation_example_in_the_schema_is_the_shipped_models_answer(make_client):
    shipped = make_client(checkpoint_path=DEFAULT_CHECKPOINT_PATH)
    example = EXPLAINED_RESPONSE_EXAMPLE
    answer = shipped.post("/classify", json={"name": example["name"], "top_k": 1, "explain": True}).json()
    ClassifyResponse.model_validate(answer)
    assert answer["model_id"] == example["model_id"] and answer["explained_label"] == example["explained_label"]
    assert [round(p["probability"], 4) for p in answer["predictions"]] == [
        p["probability"] for p in example["predictions"]
    ]
    assert [(f["text"], round(f["score"], 4)) for f in answer["explanation"]] == [
        (f["text"], f["score"]) for f in example["explanation"]
    ]


def test_classify_explain_scores_each_character_of_each_answered_name_in_place(client):
    names = ["Kovski", "123", "Mikez Bozov"]
    body = client.post("/classify", json={"names": names, "top_k": 2, "explain": True}).json()
    BatchClassifyResponse.model_validate(body)
    kovski, digits, full_name = body["results"]
    assert kovski["explained_label"] == kovski["predictions"][0]["label"]
    assert "".join(fragment["text"] for fragment in kovski["explanation"]) == "Kovski"
    assert (digits["explanation"], digits["explained_label"]) == (None, None)  # abstained: none
    assert [fragment["text"] for fragment in full_name["explanation"]][5] == " "
    assert full_name["explanation"][5]["score"] == 0.0
    assert [word["text"] for word in full_name["explanation_words"]] == ["Mikez", "Bozov"]
    assert kovski["explanation_words"] == []  # one word: its letters say it all
    assert "explanations" not in kovski  # only with explain_labels
    plain = client.post("/classify", json={"names": names, "top_k": 2}).json()
    assert "explanation" not in plain["results"][0]  # not asked for: the answer is as before
    assert [r["predictions"] for r in plain["results"]] == [r["predictions"] for r in body["results"]]


def test_classify_explain_labels_adds_an_explanation_per_label_asked_for(client):
    body = client.post("/classify", json={"name": "Kovski", "explain": True, "explain_labels": ["B", "C"]}).json()
    assert set(body["explanations"]) == {"B", "C"}
    assert [f["text"] for f in body["explanations"]["C"]] == list("Kovski")
    top = body["explained_label"]
    if top in body["explanations"]:
        assert body["explanations"][top] == body["explanation"]


@pytest.mark.parametrize(
    ("payload", "field", "error_type"),
    [
        ({"name": "Kovski", "explain_labels": ["B"]}, "body", "explain_labels_without_explain"),
        ({"name": "Kovski", "explain": True, "explain_labels": ["Klingon"]}, "explain_labels", "unknown_label"),
        ({"name": "Kovski", "explain": "yes"}, "explain", "bool_type"),
    ],
)
def test_classify_rejects_an_explanation_it_cannot_give(client, payload, field, error_type):
    error = only_error(client.post("/classify", json=payload), 422)
    assert (error["field"], error["type"]) == (field, error_type)


def test_classify_rejects_more_names_than_the_limit(make_client):
    limited = make_client(max_names_per_request=2)
    assert limited.post("/classify", json={"names": ["A", "B"]}).status_code == 200
    error = only_error(limited.post("/classify", json={"names": ["A", "B", "C"]}), 422)
    assert (error["field"], error["type"]) == ("names", "too_many_names")
    assert "at most 2" in error["message"]


def test_classify_rejects_name_over_configured_length(make_client):
    limited = make_client(max_name_length=5)
    error = only_error(limited.post("/classify", json={"names": ["Hinton"]}), 422)
    assert (error["field"], error["type"]) == ("names[0]", "name_too_long")


@pytest.mark.parametrize(
    ("content", "field", "error_type"),
    [
        (b'{"name": ', "body", "json_invalid"),
        (b"", "body", "missing"),
        (b'["Hinton"]', "body", "model_attributes_type"),
        (b"null", "body", "missing"),
    ],
)
def test_classify_rejects_malformed_or_missing_json_body(client, content, field, error_type):
    response = client.post("/classify", content=content, headers={"Content-Type": "application/json"})
    error = only_error(response, 422)
    assert (error["field"], error["type"]) == (field, error_type)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_classify_rejects_non_json_content_type_with_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/classify", content=b'{"name": "Hinton"}', headers=headers)
    error = only_error(response, 415)
    assert error["field"] == "Content-Type"
    assert (content_type or "none") in error["message"]


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
def test_classify_refuses_a_compressed_body_with_415_naming_the_encoding(client, encoding):
    """A gzip body was read as JSON text and refused as "not UTF-8 (it looks like UTF-16)"; a plain body
    sent with the header was answered, against its own word."""
    compressed = gzip.compress(b'{"name": "Hinton"}')
    for content in (compressed, b'{"name": "Hinton"}'):
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        error = only_error(client.post("/classify", content=content, headers=headers), 415)
        assert error["field"] == "Content-Encoding" and encoding in error["message"]


def test_classify_checks_every_content_encoding_header(client):
    headers = [("Content-Type", "application/json"), ("Content-Encoding", "identity"), ("Content-Encoding", "gzip")]
    error = only_error(client.post("/classify", content=b'{"name": "Hinton"}', headers=headers), 415)
    assert error["field"] == "Content-Encoding" and "gzip" in error["message"]


def test_too_many_names_over_the_limit_list_a_hundred_and_count_the_rest(client):
    errors = client.post("/classify", json={"names": ["x" * 65] * 150}).json()["errors"]
    assert len(errors) == 101 and errors[-1]["message"] == "and 50 more problems of the same request"


def test_a_head_request_is_counted_under_its_route(client):
    assert client.head("/healthz").status_code == 200
    metrics = client.get("/metrics").text
    assert 'method="HEAD",path="/healthz"' in metrics and 'method="HEAD",path="unmatched"' not in metrics


def test_classify_takes_an_identity_content_encoding(client):
    headers = {"Content-Type": "application/json", "Content-Encoding": "identity"}
    assert client.post("/classify", content=b'{"name": "Hinton"}', headers=headers).status_code == 200


def test_a_path_with_a_trailing_slash_is_not_found_rather_than_redirected_by_the_host_header(client):
    response = client.post(
        "/classify/", json={"name": "Hinton"}, headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert "location" not in response.headers


def test_a_lone_surrogate_in_a_name_is_refused_saying_so(client):
    """json.loads reads "\\ud800" into a str no encoder can write; pydantic's own message ("unable to
    parse raw data as a unicode string") did not say what was wrong."""
    content = b'{"names": ["Smith", "Jones", "\\ud800"]}'
    response = client.post("/classify", content=content, headers={"Content-Type": "application/json"})
    error = only_error(response, 422)
    assert error["field"] == "names[2]" and "surrogate" in error["message"]
    paired = b'{"names": ["Smith", "\\ud83d\\ude00 Jones"]}'  # a pair is a character (an emoji): read
    assert client.post("/classify", content=paired, headers={"Content-Type": "application/json"}).status_code == 200


def test_classify_rejects_body_over_limit_by_content_length_with_413(make_client):
    limited = make_client(max_body_bytes=100)
    response = limited.post("/classify", json={"names": ["Hinton"] * 50})
    error = only_error(response, 413)
    assert error["field"] == "body"
    assert "Content-Length" in error["message"] and "100 bytes" in error["message"]


def test_classify_rejects_chunked_body_over_limit_with_413(make_client):
    limited = make_client(max_body_bytes=100)

    def chunks():  # a generator body is sent chunked, with no Content-Length
        yield b'{"names": ['
        for _ in range(20):
            yield b'"Hinton", '
        yield b'"Rossi"]}'

    response = limited.post("/classify", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert only_error(response, 413)["field"] == "body"


def test_body_limit_refuses_declared_length_before_reading_any_body():
    reads = []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"x" * 10, "more_body": True}

    async def app(scope, receive, send):
        await receive()

    middleware = BodySizeLimitMiddleware(app, max_body_bytes=100)
    scope = {"type": "http", "headers": [(b"content-length", b"101")]}
    with pytest.raises(BodyTooLargeError):
        asyncio.run(middleware(scope, receive, None))
    assert reads == []


def test_unknown_path_and_wrong_method_answer_json(client):
    assert client.get("/nope").json()["error"] == "not_found"
    response = client.get("/classify")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


# --- request logs ---------------------------------------------------------------------------------


def request_log_fields(caplog) -> list[dict]:
    return [json.loads(JsonFormatter().format(record)) for record in caplog.records if record.getMessage() == "request"]


def test_request_log_is_one_json_line_without_names_at_info(client, caplog):
    with caplog.at_level(logging.INFO, logger="app.observability"):
        client.post("/classify", json={"names": ["Hinton", "Rossi"]})
    [line] = request_log_fields(caplog)
    assert line["method"] == "POST" and line["path"] == "/classify" and line["status"] == 200
    assert line["num_names"] == 2 and line["latency_ms"] > 0
    assert "names" not in line
    assert "Hinton" not in caplog.text


def test_request_log_includes_names_only_at_debug(make_client, caplog):
    debug_client = make_client(log_level="DEBUG")
    with caplog.at_level(logging.DEBUG, logger="app.observability"):
        debug_client.post("/classify", json={"name": "Hinton"})
    [line] = request_log_fields(caplog)
    assert line["names"] == ["Hinton"]


def test_json_log_line_keeps_any_name_at_debug_even_a_lone_surrogate():
    record = logging.LogRecord("app.observability", logging.DEBUG, "", 0, "request", (), None)
    record.fields = {"names": ["Nguyễn", "田中", "bad\ud800"], "status": 200}
    line = JsonFormatter().format(record)
    assert json.loads(line)["names"] == ["Nguyễn", "田中", "bad\ud800"] and "\n" not in line
    record.fields = {"names": ["Nguyễn"]}
    assert "Nguyễn" in JsonFormatter().format(record)  # written as UTF-8, not \u escapes


def test_json_log_time_is_datetimes_isoformat_to_the_millisecond_with_its_rounding():
    formatter = JsonFormatter()
    rng = random.Random(7)
    edges = [0.0, 1.9999995, 1.0000005, 1.9999994999, 1765065600.9995, 1765065600.0009995, -1.5, -0.0000004]
    near_rounding = [rng.randrange(2_000_000_000) + rng.randrange(1_000_000) / 1e6 + half for half in (5e-7, -5e-7)]
    for created in edges + near_rounding + [rng.uniform(0, 4e9) for _ in range(20_000)]:
        assert formatter.timestamp(created) == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    record = logging.LogRecord("app.observability", logging.INFO, "", 0, "request", (), None)
    record.created = 1765065600.25
    record.fields = {"status": 200, 7: "a non-string key"}
    line = json.loads(formatter.format(record))
    assert line == {
        "time": "2025-12-07T00:00:00.250+00:00",
        "level": "INFO",
        "logger": "app.observability",
        "message": "request",
        "status": 200,
        "7": "a non-string key",
    }


@pytest.mark.parametrize("body", [{"name": "A"}, {"names": ["O", "Y"]}, {"names": ["O", "Li"]}])
def test_classify_with_shipped_checkpoint_answers_one_letter_names(make_client, body):
    response = make_client(checkpoint_path=DEFAULT_CHECKPOINT_PATH).post("/classify", json=body)
    assert response.status_code == 200, response.text


def test_a_misspelt_prior_names_the_value_in_the_error(client):
    error = only_error(client.post("/classify", json={"name": "Smith", "prior": "Uniform"}), 422)
    assert error["message"] == "prior must be 'dataset', 'uniform' or a {label: weight} object; got 'Uniform'"


@pytest.mark.parametrize(
    ("prior", "message"),
    [
        ({"English": -1}, "prior's weight for 'English' must be a number >= 0; got -1"),
        ({"English": True}, "prior's weight for 'English' must be a number >= 0; got True"),
        ({"English": "1"}, "prior's weight for 'English' must be a number >= 0; got '1'"),
        ({"English": None}, "prior's weight for 'English' must be a number >= 0; got None"),
        (["English"], "prior must be 'dataset', 'uniform' or a {label: weight} object; got ['English']"),
        (None, "prior must be 'dataset', 'uniform' or a {label: weight} object; got None"),
        (1, "prior must be 'dataset', 'uniform' or a {label: weight} object; got 1"),
    ],
)
def test_a_prior_of_no_allowed_shape_is_one_error_on_the_prior(client, prior, message):
    """Not two errors named after pydantic's union branches (`prior.literal['dataset','uniform']` and
    `prior.dict[str,constrained-float].English`), one of them saying a map must be a string."""
    error = only_error(client.post("/classify", json={"name": "Smith", "prior": prior}), 422)
    assert (error["field"], error["type"], error["message"]) == ("prior", "invalid_prior", message)


def test_the_name_length_limit_counts_what_compatibility_characters_spell_out(client):
    """ﷺ is one code point and 18 letters as read: 64 of them passed the limit and took 12-18 s to explain."""
    error = only_error(client.post("/classify", json={"name": "\ufdfa" * 64, "explain": True}), 422)
    assert error["type"] == "name_too_long" and "at most 64" in error["message"]
    assert client.post("/classify", json={"name": "\ufdfa\ufdfa"}).status_code == 200  # 37 characters as read


def test_a_query_string_on_classify_is_refused_rather_than_ignored(client):
    """POST /classify?top_k=5 was answered with the default top_k of 3."""
    error = only_error(client.post("/classify?top_k=5", json={"name": "Smith"}), 422)
    assert (error["field"], error["type"]) == ("query", "query_not_read") and "top_k=5" in error["message"]


def test_the_name_length_limit_counts_characters_as_read_not_code_points(client):
    """A name decomposed (NFD), padded with spaces or holding zero-width marks is as long as it reads,
    so one such row does not get a whole batch refused."""
    import unicodedata

    name = "Nguyễn Thị Phương Thảo Trần Hưng Đạo Lê Văn Thịnh Hồ"  # 52 characters, 67 code points in NFD
    decomposed = unicodedata.normalize("NFD", name)
    assert len(decomposed) > 64
    padded = " " * 40 + "John Smith" + " " * 40
    marked = "\u200b" * 30 + "Kowalski" + "\u200e" * 30
    response = client.post("/classify", json={"names": [decomposed, padded, marked, "Hinton"]})
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert results[0]["predictions"] == client.post("/classify", json={"name": name}).json()["predictions"]
    too_long = "ễ" * 65
    error = only_error(client.post("/classify", json={"name": unicodedata.normalize("NFD", too_long)}), 422)
    assert (error["type"], error["message"]) == ("name_too_long", "name is 65 characters; at most 64 are accepted")


def test_classify_refuses_a_label_named_twice_in_explain_labels(client):
    """Each copy was explained again for every name: 115,000 copies of one label in a 1 MB body held
    the event loop for 10 s, and /healthz with it."""
    payload = {"names": ["Kovski"] * 10, "explain": True, "explain_labels": ["B", "C"] + ["B"] * 50_000}
    error = only_error(client.post("/classify", json=payload), 422)
    assert (error["field"], error["type"]) == ("explain_labels", "duplicate_label")
    assert error["message"] == "explain_labels names ['B'] more than once"


def test_an_error_lists_a_few_unknown_labels_not_all(client):
    """A prior of 60,000 unknown labels drew a 589 KB answer listing every one."""
    unknown = [f"L{index:05d}" for index in range(60_000)]
    response = client.post("/classify", json={"name": "Kovski", "prior": dict.fromkeys(unknown, 1)})
    error = only_error(response, 422)
    assert error["field"] == "prior" and "and 59,990 more" in error["message"] and "L00010" not in error["message"]
    assert len(response.content) < 2_000
    error = only_error(
        client.post("/classify", json={"name": "Kovski", "explain": True, "explain_labels": unknown[:50]}), 422
    )
    assert "and 40 more" in error["message"]


def test_an_undeclared_gzip_body_is_named_as_gzip(client):
    """Its header's NUL byte made the message say UTF-16 or UTF-32."""
    response = client.post(
        "/classify", content=gzip.compress(b'{"name": "Kovski"}'), headers={"Content-Type": "application/json"}
    )
    error = only_error(response, 400)
    assert "gzip data with no Content-Encoding" in error["message"]


def test_request_names_count_only_answered_requests(make_client):
    limited = make_client(max_names_per_request=2)

    def carried() -> float:
        match = re.search(r"^nameorigin_request_names_sum (\S+)$", limited.get("/metrics").text, re.M)
        return float(match.group(1)) if match else 0.0

    before = carried()
    assert limited.post("/classify", json={"names": ["A"] * 500}).status_code == 422
    assert carried() == before
    assert limited.post("/classify", json={"names": ["A", "B"]}).status_code == 200
    assert carried() == before + 2


def test_the_offline_docs_are_counted_under_their_own_path(client):
    """Starlette's plain routes do not set scope["route"]: /openapi.json's 200s were "unmatched"."""
    assert client.get("/openapi.json").status_code == 200
    text = client.get("/metrics").text
    assert 'method="GET",path="/openapi.json",status="200"' in text
