"""Classifies a chunk of names once per distinct key and spreads the answers back over the rows.

Only keys neither seen earlier in the chunk nor held by the answer cache reach the predictor, so a
table that repeats surnames pays for each surname once. What the cache keeps (and so every answer)
depends only on the chunks before, which makes a resumed run write exactly what an uninterrupted one
writes: the network's float32 output moves in the 7th digit with the batch a name is classified in.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch.cache import DEFAULT_CACHE_NAMES, KEY, RAW, AnswerCache
from batch.columns import (
    ABSTAINED,
    EXPLANATION,
    LABEL,
    PROBABILITY,
    REASON,
    TOP_K,
    TOP_K_ENTRY,
    answer_fields,
    probability_column,
)
from batch.names import EMPTY_REASON, dedup_key
from model.predictor import DEFAULT_TOP_K, LabelProbability, NamePrediction, Predictor

DEFAULT_BATCH_SIZE = 4096  # names per predict() call; the predictor splits it further for the network
_EMPTY = np.iinfo(np.int64).min  # a raw value with no name: slot 0


@dataclass(frozen=True)
class ClassifyOptions:
    """What to ask the predictor for each name; passed through unchanged from the CLI, DataFrame and Spark APIs."""

    top_k: int = DEFAULT_TOP_K
    all_labels: bool = False  # one p_<label> column per label
    prior: str | dict[str, float] = field(default="dataset")  # "dataset", "uniform" or {label: weight}
    min_probability: float = 0.0  # a top label below it abstains as "low-confidence"
    batch_size: int = DEFAULT_BATCH_SIZE
    explain: bool = False  # an origin_explanation column: each character's occlusion score (model.explain)

    def __post_init__(self) -> None:
        """Types checked, and numpy scalars made Python's, whatever the data: an empty or all-null frame
        never reaches the predictor, whose own checks let top_k=2.5 or True through there and refused
        np.int64(2), what a value read from a DataFrame or a config is."""
        object.__setattr__(self, "top_k", whole_number(self.top_k, "top_k"))
        object.__setattr__(self, "batch_size", whole_number(self.batch_size, "batch_size"))
        Predictor.check_min_probability(self.min_probability)
        object.__setattr__(self, "min_probability", float(self.min_probability))
        for flag in ("all_labels", "explain"):
            value = getattr(self, flag)
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"{flag} must be True or False, got {value!r}")
            object.__setattr__(self, flag, bool(value))

    def check_labels(self, labels: tuple[str, ...]) -> None:
        """What depends on the model: top_k no more than its labels."""
        if not 1 <= self.top_k <= len(labels):
            raise ValueError(f"top_k must be between 1 and {len(labels)} (the model's labels), got {self.top_k}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "all_labels": self.all_labels,
            "prior": self.prior,
            "min_probability": self.min_probability,
            "batch_size": self.batch_size,
            "explain": self.explain,
        }


def whole_number(value: object, name: str, minimum: int = 1) -> int:
    """`value` as a Python int of at least `minimum`: any integer type (numpy's too), never a bool or a float."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}")
    return number


class ChunkAnswers(NamedTuple):
    """A chunk's answers: one slot per distinct key (slot 0: empty), and which slot each row takes."""

    slots: pa.Table  # the added columns, one row per slot
    row_slots: pa.Array  # int32, one per input row
    names_classified: int  # keys sent to the predictor for this chunk
    cached: pa.Table  # the answers (with key and raw text) this chunk added to the cache: a resumed run re-adds them

    def rows(self) -> pa.Table:
        return self.slots.take(self.row_slots)

    def rows_per_slot(self) -> np.ndarray:
        return np.bincount(self.row_slots.to_numpy(), minlength=self.slots.num_rows)


class ColumnClassifier:
    """One predictor and one set of options, applied chunk by chunk with one answer cache."""

    def __init__(
        self,
        predictor: Predictor,
        options: ClassifyOptions,
        top_k_json: bool = False,
        cache_names: int = DEFAULT_CACHE_NAMES,
    ) -> None:
        num_labels = len(predictor.labels)
        options.check_labels(predictor.labels)
        predictor.log_prior_for(options.prior)  # a bad prior fails here, before any file is touched (PriorError)
        self.predictor = predictor
        self.options = options
        self.labels = tuple(predictor.labels)
        self.top_k_json = top_k_json
        self.schema = pa.schema(answer_fields(self.labels, options.all_labels, top_k_json, options.explain))
        self.cache = AnswerCache(self.schema, cache_names)
        self._predict_top_k = num_labels if options.all_labels else options.top_k
        self._empty = self._empty_answer()
        self._quoted_labels = {label: json.dumps(label) for label in self.labels}

    @property
    def model_id(self) -> str:
        return self.predictor.checkpoint.model_id

    def classify(self, names: pa.Array) -> ChunkAnswers:
        """Answers for a string array of names (nulls and blanks abstain as "empty"), row for row."""
        encoded = pc.dictionary_encode(names)  # distinct raw values in first-seen order: deterministic
        codes, cached_rows, new_entries = self._codes(encoded.dictionary)
        new_answers = self._classify_new(new_entries[RAW])
        slot_of_value = np.where(codes == _EMPTY, 0, np.where(codes >= 0, 1 + codes, len(cached_rows) - codes))
        slots = pa.concat_tables(
            [self._empty, self.cache.take(np.array(cached_rows, np.int64)), new_answers]
        ).combine_chunks()
        row_slots = pa.array(slot_of_value, pa.int32()).take(encoded.indices.fill_null(len(encoded.dictionary)))
        entries = new_answers.append_column(KEY, pa.array(new_entries[KEY], pa.string()))
        cached = self.cache.add(entries.append_column(RAW, pa.array(new_entries[RAW], pa.string())))
        return ChunkAnswers(slots, row_slots, new_answers.num_rows, cached)

    def restore(self, cached: pa.Table) -> None:
        """Re-add the entries a finished chunk added (read back from a resumable run's journal)."""
        self.cache.add(cached)

    def _codes(self, raw_values: pa.Array) -> tuple[np.ndarray, list[int], dict[str, list[str]]]:
        """Per distinct raw value (plus one for null): _EMPTY, the index of its cached answer among this
        chunk's cache hits, or -(j + 1) for the j-th new name; and the new names' keys and raw texts.
        Texts classified before are found in Arrow at once; only the others are keyed in Python. Names
        sharing a key share the code; the first raw value seen with a new key is the one classified."""
        codes = np.full(len(raw_values) + 1, _EMPTY, np.int64)
        by_text = self.cache.rows_of(raw_values, RAW)
        hits = np.flatnonzero(by_text >= 0)
        cached_rows = by_text[hits].tolist()
        codes[hits] = np.arange(len(hits))
        misses = np.flatnonzero(by_text < 0)
        miss_raws = raw_values.take(pa.array(misses)).to_pylist()
        exact = self.options.explain  # explanations quote each row's own characters
        miss_keys = [dedup_key(raw, exact) for raw in miss_raws]
        first_raw: dict[str, str] = {}
        for raw, key in zip(miss_raws, miss_keys, strict=True):
            if key and key not in first_raw:
                first_raw[key] = raw
        by_key = self.cache.rows_of(pa.array(list(first_raw), pa.string()), KEY)
        code_of_key: dict[str, int] = {}
        new: dict[str, list[str]] = {KEY: [], RAW: []}
        for (key, raw), row in zip(first_raw.items(), by_key.tolist(), strict=True):
            if row >= 0:
                cached_rows.append(row)
                code_of_key[key] = len(cached_rows) - 1
            else:
                new[KEY].append(key)
                new[RAW].append(raw)
                code_of_key[key] = -len(new[KEY])
        for position, key in zip(misses.tolist(), miss_keys, strict=True):
            if key:
                codes[position] = code_of_key[key]
        return codes, cached_rows, new

    def _classify_new(self, names: list[str]) -> pa.Table:
        """The answers of names not seen before, one predict() call per batch_size names, each batch's
        answers turned into Arrow before the next: a NamePrediction with its tokens costs far more memory
        than its row, and a chunk can hold 10^5 new names."""
        size = self.options.batch_size
        tables = [
            self._answer_table(
                self.predictor.predict(
                    names[start : start + size],
                    top_k=self._predict_top_k,
                    prior=self.options.prior,
                    min_probability=self.options.min_probability,
                    explain=self.options.explain,
                )
            )
            for start in range(0, len(names), size)
        ]
        return pa.concat_tables(tables).combine_chunks() if tables else self.schema.empty_table()

    def _answer_table(self, answers: list[NamePrediction]) -> pa.Table:
        """One row per answer. An abstained answer has no label or probability, but keeps in top-k (and
        p_<label>) whatever probabilities the model gave."""
        if not answers:
            return self.schema.empty_table()
        top_k = self.options.top_k
        labels, probabilities, abstained, reasons = [], [], [], []
        shown_lists = []
        for answer in answers:
            predictions = answer.predictions
            answered = bool(predictions) and not answer.abstained
            labels.append(predictions[0].label if answered else None)
            probabilities.append(predictions[0].probability if answered else None)
            abstained.append(not answered)
            reasons.append(answer.reason if not answered else None)
            shown_lists.append(predictions[:top_k])
        columns = {
            LABEL: pa.array(labels, pa.string()),
            PROBABILITY: pa.array(probabilities, pa.float64()),
            TOP_K: self._top_k_column(shown_lists),
            ABSTAINED: pa.array(abstained, pa.bool_()),
            REASON: pa.array(reasons, pa.string()),
        }
        if self.options.all_labels:
            columns.update(self._label_probabilities(answers))
        if self.options.explain:
            columns[EXPLANATION] = pa.array([_explanation_json(answer) for answer in answers], pa.string())
        return pa.Table.from_pydict(columns, schema=self.schema)

    def _empty_answer(self) -> pa.Table:
        """Slot 0 of every chunk: the answer for a missing or blank name, which the predictor never sees."""
        columns: dict[str, list[object]] = {
            LABEL: [None],
            PROBABILITY: [None],
            TOP_K: ["[]" if self.top_k_json else []],
            ABSTAINED: [True],
            REASON: [EMPTY_REASON],
        }
        if self.options.all_labels:
            columns.update({probability_column(label): [None] for label in self.labels})
        if self.options.explain:
            columns[EXPLANATION] = [None]
        return pa.Table.from_pydict(columns, schema=self.schema)

    def _top_k_column(self, shown_lists: list[tuple[LabelProbability, ...]]) -> pa.Array:
        """list<struct<label, probability>>, or JSON text built once per distinct name (CSV, TSV)."""
        if self.top_k_json:
            quoted = self._quoted_labels
            return pa.array(
                [
                    "["
                    + ",".join(
                        f'{{"label":{quoted[entry.label]},"probability":{entry.probability!r}}}' for entry in shown
                    )
                    + "]"
                    for shown in shown_lists
                ],
                pa.string(),
            )
        offsets = np.cumsum([0] + [len(shown) for shown in shown_lists], dtype=np.int32)
        entries = pa.StructArray.from_arrays(
            [
                pa.array([entry.label for shown in shown_lists for entry in shown], pa.string()),
                pa.array([entry.probability for shown in shown_lists for entry in shown], pa.float64()),
            ],
            fields=list(TOP_K_ENTRY),
        )
        return pa.ListArray.from_arrays(pa.array(offsets), entries)

    def _label_probabilities(self, answers: list[NamePrediction]) -> dict[str, pa.Array]:
        index_of = {label: index for index, label in enumerate(self.labels)}
        matrix = np.full((len(answers), len(self.labels)), np.nan)
        for row, answer in enumerate(answers):
            for prediction in answer.predictions:
                matrix[row, index_of[prediction.label]] = prediction.probability
        return {
            probability_column(label): pa.array(matrix[:, index], pa.float64(), from_pandas=True)  # NaN -> null
            for index, label in enumerate(self.labels)
        }


def _explanation_json(answer: NamePrediction) -> str | None:
    """The top label's explanation as compact JSON, as the API writes it; None when the name abstained."""
    explanation = answer.explanation
    if explanation is None or answer.abstained:
        return None
    fragments = zip(explanation.fragments, explanation.scores[0], strict=True)
    return json.dumps([{"text": text, "score": score} for text, score in fragments], ensure_ascii=False)
