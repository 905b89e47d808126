"""batch.classify and batch.cache: each distinct name classified once, answers spread back row for row."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from batch.cache import KEY, RAW, AnswerCache
from batch.classify import ClassifyOptions, ColumnClassifier
from batch.columns import ABSTAINED, LABEL, PROBABILITY, REASON, TOP_K, probability_column
from batch.names import dedup_key
from tests.batch_fixtures import name_column


@pytest.fixture
def calls(trained_predictor, monkeypatch):
    """Every list of names the predictor is asked to classify."""
    seen: list[list[str]] = []
    original = trained_predictor.predict

    def spy(names, *args, **kwargs):
        seen.append(list(names))
        return original(names, *args, **kwargs)

    monkeypatch.setattr(trained_predictor, "predict", spy)
    return seen


def test_column_classifier_answers_equal_the_predictors_row_for_row(trained_predictor):
    names = name_column(300, seed=1)
    rows = (
        ColumnClassifier(trained_predictor, ClassifyOptions(top_k=2))
        .classify(pa.array(names, pa.string()))
        .rows()
        .to_pylist()
    )
    for name, row in zip(names, rows, strict=True):
        if not dedup_key(name):
            assert (row[LABEL], row[ABSTAINED], row[REASON], row[TOP_K]) == (None, True, "empty", [])
            continue
        expected = trained_predictor.predict([name], top_k=2)[0]
        assert row[ABSTAINED] == expected.abstained and row[REASON] == expected.reason, name
        assert [entry["label"] for entry in row[TOP_K]] == [p.label for p in expected.predictions], name
        assert [entry["probability"] for entry in row[TOP_K]] == pytest.approx(
            [p.probability for p in expected.predictions], abs=1e-6
        )
        if not expected.abstained:
            assert row[LABEL] == expected.predictions[0].label
            assert row[PROBABILITY] == pytest.approx(expected.predictions[0].probability, abs=1e-6)


def test_column_classifier_sends_each_distinct_key_once_and_never_a_blank(trained_predictor, calls):
    names = name_column(500, seed=2)
    classifier = ColumnClassifier(trained_predictor, ClassifyOptions())
    first = classifier.classify(pa.array(names[:250], pa.string()))
    second = classifier.classify(pa.array(names[250:], pa.string()))
    sent = [name for call in calls for name in call]
    assert len({dedup_key(name) for name in sent}) == len(sent)  # no key twice, across chunks too
    assert {dedup_key(name) for name in sent} == {dedup_key(name) for name in names} - {""}
    assert all(dedup_key(name) for name in sent)
    assert first.names_classified + second.names_classified == len(sent)


def test_a_name_with_nothing_readable_abstains_as_the_predictor_says_and_only_a_blank_one_as_empty(trained_predictor):
    """A row of an emoji or a zero-width space read as no text and abstained as `empty`, where
    Predictor.predict answers `no-letters` (bench measurement 6 counted 2,043 such rows of 1M)."""
    names = ["\U0001f600", "\u200b", "\U0001f600", " ", "", "\u3000", "Bakov"]
    rows = ColumnClassifier(trained_predictor, ClassifyOptions()).classify(pa.array(names, pa.string())).rows()
    expected = trained_predictor.predict(["\U0001f600", "\u200b"])
    assert rows.column(REASON).to_pylist()[:6] == [
        expected[0].reason,
        expected[1].reason,
        expected[0].reason,
        "empty",
        "empty",
        "empty",
    ]
    assert expected[0].reason == "no-letters"


def test_column_classifier_without_cache_classifies_each_chunk_on_its_own(trained_predictor, calls):
    names = name_column(200, seed=3)
    classifier = ColumnClassifier(trained_predictor, ClassifyOptions(), cache_names=0)
    classifier.classify(pa.array(names, pa.string()))
    classifier.classify(pa.array(names, pa.string()))
    assert len(calls) == 2 and calls[0] == calls[1]


def test_column_classifier_keeps_probabilities_of_a_low_confidence_abstention(trained_predictor):
    rows = (
        ColumnClassifier(trained_predictor, ClassifyOptions(min_probability=0.999))
        .classify(pa.array(["Bakov"]))
        .rows()
        .to_pylist()
    )
    assert rows[0][ABSTAINED] and rows[0][REASON] == "low-confidence"
    assert rows[0][LABEL] is None and rows[0][PROBABILITY] is None
    assert len(rows[0][TOP_K]) == 3


def test_column_classifier_all_labels_gives_a_probability_per_label_summing_to_one(trained_predictor):
    classifier = ColumnClassifier(trained_predictor, ClassifyOptions(top_k=1, all_labels=True))
    rows = classifier.classify(pa.array(["Bakov", None], pa.string())).rows().to_pylist()
    probabilities = [rows[0][probability_column(label)] for label in trained_predictor.labels]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    assert max(probabilities) == pytest.approx(rows[0][PROBABILITY])
    assert all(rows[1][probability_column(label)] is None for label in trained_predictor.labels)


def test_column_classifier_top_k_json_is_compact_json_of_the_same_entries(trained_predictor):
    names = pa.array(["Bakov", ""], pa.string())
    as_list = ColumnClassifier(trained_predictor, ClassifyOptions()).classify(names).rows().column(TOP_K).to_pylist()
    as_json = (
        ColumnClassifier(trained_predictor, ClassifyOptions(), top_k_json=True)
        .classify(names)
        .rows()
        .column(TOP_K)
        .to_pylist()
    )
    assert [json.loads(text) for text in as_json] == as_list
    assert as_json[1] == "[]" and " " not in as_json[0]


def test_column_classifier_restored_from_a_journal_answers_like_the_original(trained_predictor):
    names = name_column(400, seed=4)
    original = ColumnClassifier(trained_predictor, ClassifyOptions())
    first = original.classify(pa.array(names[:200], pa.string()))
    restored = ColumnClassifier(trained_predictor, ClassifyOptions())
    restored.restore(first.cached)
    later = pa.array(names[200:], pa.string())
    assert restored.classify(later).rows().equals(original.classify(later).rows())


def test_column_classifier_refuses_top_k_beyond_the_labels(trained_predictor):
    with pytest.raises(ValueError, match="top_k must be between 1 and 3"):
        ColumnClassifier(trained_predictor, ClassifyOptions(top_k=4))


def _entries(values: list[int]) -> pa.Table:
    return pa.table(
        {"value": values, KEY: [f"k{value}" for value in values], RAW: [f"Raw {value}" for value in values]}
    )


def test_answer_cache_keeps_the_first_names_up_to_its_capacity():
    cache = AnswerCache(pa.schema([("value", pa.int64())]), capacity=3)
    assert cache.add(_entries([1, 2])).num_rows == 2
    assert cache.add(_entries([3, 4])).column("value").to_pylist() == [3]
    assert len(cache) == 3
    rows = cache.rows_of(pa.array(["k3", "k4", "k1"]), KEY)
    assert rows.tolist()[1] == -1
    assert cache.take(rows[[0, 2]]).column("value").to_pylist() == [3, 1]


def test_answer_cache_finds_rows_by_key_or_raw_text_across_its_segments():
    cache = AnswerCache(pa.schema([("value", pa.int64())]), capacity=1000)
    for start in range(0, 100, 7):  # many small additions: segments merge, row numbers stay put
        cache.add(_entries(list(range(start, min(start + 7, 100)))))
    wanted = [93, 0, 50, 7, 99, 13]
    by_key = cache.rows_of(pa.array([f"k{value}" for value in wanted]), KEY)
    by_raw = cache.rows_of(pa.array([f"Raw {value}" for value in wanted]), RAW)
    assert by_key.tolist() == by_raw.tolist()
    assert cache.take(by_key).column("value").to_pylist() == wanted


def test_with_explanations_each_spelling_is_explained_in_its_own_characters(trained_predictor, calls):
    """Without explanations BAKOV and Bakov share an answer (one reading); an explanation quotes the
    characters as written, so with explanations each spelling is classified and explained itself."""
    names = ["Bakov", "BAKOV", "bakov", "Bakov", None]
    rows = (
        ColumnClassifier(trained_predictor, ClassifyOptions(explain=True))
        .classify(pa.array(names, pa.string()))
        .rows()
        .to_pylist()
    )
    assert sorted(name for call in calls for name in call) == ["BAKOV", "Bakov", "bakov"]
    explained = [(name, row["origin_explanation"]) for name, row in zip(names, rows, strict=True)]
    assert all(explanation is not None for _, explanation in explained[:4]), rows
    for name, explanation in explained[:4]:
        assert "".join(fragment["text"] for fragment in json.loads(explanation)) == name
    assert rows[0]["origin_explanation"] == rows[3]["origin_explanation"]
    calls.clear()
    ColumnClassifier(trained_predictor, ClassifyOptions()).classify(pa.array(names, pa.string()))
    assert [name for call in calls for name in call] == ["Bakov"]
