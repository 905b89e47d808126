"""Bodies are RFC 8259 JSON: UTF-8 only, no duplicate keys, bounded nesting and numbers; every refusal
is 400 or 422 with a reason in `errors`, and a name with a control character abstains in its place."""

from __future__ import annotations

import pytest

from app.json_body import MAX_INTEGER_DIGITS, BodyDecodeError, decode_json_body

JSON = {"Content-Type": "application/json"}

REFUSED_BODIES = {
    "utf-16 with BOM": ('{"name": "Hinton"}'.encode("utf-16"), 400, "not_utf8"),
    "utf-16-le": ('{"name": "Hinton"}'.encode("utf-16-le"), 400, "not_utf8"),
    "utf-16-be": ('{"name": "Hinton"}'.encode("utf-16-be"), 400, "not_utf8"),
    "utf-32": ('{"name": "Hinton"}'.encode("utf-32"), 400, "not_utf8"),
    "latin-1": ('{"name": "Müller"}'.encode("latin-1"), 400, "not_utf8"),
    "invalid utf-8": (b'{"name": "\xff\xfe"}', 400, "not_utf8"),
    "utf-8 byte order mark": ('\ufeff{"name": "Hinton"}'.encode(), 400, "not_utf8"),
    "10^5 levels of nesting": (b"[" * 100_000 + b"]" * 100_000, 400, "json_too_deep"),
    "an integer of 5000 digits": (b'{"name": "Hinton", "top_k": ' + b"9" * 5000 + b"}", 400, "number_too_large"),
    "a float out of range": (b'{"name": "Hinton", "min_probability": 1e400}', 400, "number_too_large"),
    "a float of 200,000 digits": (
        b'{"name": "Hinton", "min_probability": 0.' + b"1" * 200_000 + b"}",
        400,
        "number_too_large",
    ),
    "NaN": (b'{"name": "Hinton", "min_probability": NaN}', 400, "json_invalid"),
    "a duplicate key": (b'{"name": "Hinton", "name": "Rossi"}', 422, "duplicate_key"),
    "a duplicate key in the prior": (b'{"name": "Hinton", "prior": {"A": 1, "A": 2}}', 422, "duplicate_key"),
    "malformed": (b'{"name": ', 422, "json_invalid"),
}


@pytest.mark.parametrize("case", REFUSED_BODIES)
def test_classify_refuses_a_body_that_is_not_utf8_json_with_a_reason_in_errors(client, case):
    body, status, error_type = REFUSED_BODIES[case]
    response = client.post("/classify", content=body, headers=JSON)
    assert response.status_code == status
    errors = response.json()["errors"]
    assert errors and errors[0]["field"] == "body" and errors[0]["type"] == error_type and errors[0]["message"]


def test_classify_still_reads_utf8_bodies_with_non_ascii_names(client):
    response = client.post("/classify", content='{"names": ["Müller", "Nguyễn"]}'.encode(), headers=JSON)
    assert response.status_code == 200
    assert [result["name"] for result in response.json()["results"]] == ["Müller", "Nguyễn"]


def test_a_request_with_thousands_of_problems_lists_a_hundred_and_counts_the_rest(client):
    """90,000 unknown keys made a 7.8 MB answer to a 1 MB body, built on the event loop."""
    body = {"name": "Hinton", **{f"k{index}": 1 for index in range(5000)}}
    errors = client.post("/classify", json=body).json()["errors"]
    assert len(errors) == 101 and all(error["type"] == "extra_forbidden" for error in errors[:100])
    assert errors[-1] == {
        "field": "body",
        "message": "and 4900 more problems of the same request",
        "type": "too_many_problems",
    }


def test_a_malformed_body_is_described_in_plain_words(client):
    error = client.post("/classify", content=b'{"name": "Hin\tton"}', headers=JSON).json()["errors"][0]
    assert error["message"] == "malformed JSON: Invalid control character (at character 13)"


def test_decode_json_body_accepts_the_largest_integer_allowed_and_refuses_one_more_digit():
    assert decode_json_body(b"9" * MAX_INTEGER_DIGITS) == int("9" * MAX_INTEGER_DIGITS)
    with pytest.raises(BodyDecodeError):
        decode_json_body(b"9" * (MAX_INTEGER_DIGITS + 1))


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f"])
def test_a_name_with_a_control_character_abstains_in_its_place_with_a_reason(client, control):
    names = ["Rossi", f"Hin{control}ton", "Hinton"]
    results = client.post("/classify", json={"names": names}).json()["results"]
    assert [result["name"] for result in results] == names
    assert results[1]["abstained"] and results[1]["reason"] == "control-characters" and not results[1]["predictions"]
    assert not results[0]["abstained"] and not results[2]["abstained"]
    single = client.post("/classify", json={"name": f"Hin{control}ton"}).json()
    assert single["reason"] == "control-characters"


def test_tab_and_newline_in_a_name_are_whitespace_not_control_characters(client):
    results = client.post("/classify", json={"names": ["Van\tDyke", "Van\nDyke", "Van Dyke"]}).json()["results"]
    assert [result["read_as"] for result in results] == ["van dyke"] * 3


def test_openapi_documents_every_refusal_status_of_classify(client):
    responses = client.get("/openapi.json").json()["paths"]["/classify"]["post"]["responses"]
    assert {"400", "413", "415", "422", "503"} <= set(responses)
    assert "UTF-8" in responses["400"]["description"] and "twice" in responses["422"]["description"]
