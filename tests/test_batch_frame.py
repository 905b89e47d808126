"""batch.classify_frame and batch.classify_table: the command's columns for a DataFrame or Arrow table."""

from __future__ import annotations

import math
import re
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from batch import classify_frame, classify_table
from batch.cli import main
from batch.columns import MODEL_ID_METADATA_KEY
from batch.errors import BatchInputError
from model.predictor import Predictor
from tests.batch_fixtures import name_column


def test_classify_frame_answers_each_spelling_as_the_predictor_does_whatever_comes_first():
    shipped = Predictor.from_path(device="cpu")
    names = ["Großmann", "Grossmann", "GROSSMANN", "GROẞMANN", "Yılmaz", "YILMAZ"]
    for order in (names, names[::-1]):
        result = classify_frame(pd.DataFrame({"name": order}), "name", top_k=1, predictor=shipped)
        expected = shipped.predict(order, top_k=1)
        for row, answer in zip(result.itertuples(), expected, strict=True):
            assert row.origin_reason == answer.reason
            if answer.predictions:
                assert row.origin_probability == pytest.approx(answer.predictions[0].probability, abs=1e-6)


def test_classify_frame_keeps_the_frame_and_its_index_and_adds_the_answers(trained_predictor):
    df = pd.DataFrame({"name": ["Bakov", "Ziski", "Bakov"], "zip": ["00501", "02134", "1"]}, index=[10, 20, 30])
    result = classify_frame(df, "name", top_k=2, predictor=trained_predictor)
    assert list(result.index) == [10, 20, 30]
    added = ["origin_label", "origin_probability", "origin_top_k", "origin_abstained", "origin_reason"]
    assert list(result.columns) == ["name", "zip", *added]
    pd.testing.assert_frame_equal(result[["name", "zip"]], df)
    expected = trained_predictor.predict(["Bakov", "Ziski"], top_k=2)
    assert result.loc[10, "origin_label"] == expected[0].predictions[0].label
    assert result.loc[20, "origin_top_k"] == [
        {"label": p.label, "probability": pytest.approx(p.probability, abs=1e-6)} for p in expected[1].predictions
    ]
    assert result.attrs["nameorigin.model_id"] == trained_predictor.checkpoint.model_id
    assert "origin_label" not in df.columns  # a copy: the caller's frame is left alone


def test_classify_frame_treats_none_nan_and_pd_na_as_empty(trained_predictor):
    df = pd.DataFrame({"name": pd.Series(["Bakov", None, np.nan, pd.NA, "  "], dtype=object)})
    result = classify_frame(df, "name", predictor=trained_predictor)
    assert list(result["origin_reason"][1:]) == ["empty"] * 4
    assert result["origin_abstained"].tolist() == [False, True, True, True, True]
    assert math.isnan(result.loc[1, "origin_probability"])


def test_classify_frame_reads_non_text_values_as_their_text(trained_predictor):
    result = classify_frame(pd.DataFrame({"name": ["Bakov", 12345, 2.5]}), "name", predictor=trained_predictor)
    assert result["origin_reason"].tolist()[1:] == ["no-letters", "no-letters"]


def test_classify_frame_joins_given_name_and_surname(trained_predictor):
    df = pd.DataFrame({"given": ["Ann", None], "surname": ["Bakov", None]})
    result = classify_frame(df, ["given", "surname"], predictor=trained_predictor)
    expected = trained_predictor.predict(["Ann Bakov"])[0]
    assert result.loc[0, "origin_abstained"] == expected.abstained
    assert result.loc[1, "origin_reason"] == "empty"


def test_classify_frame_refuses_a_column_it_would_overwrite(trained_predictor):
    with pytest.raises(BatchInputError, match="'origin_label'"):
        classify_frame(pd.DataFrame({"name": ["Bakov"], "origin_label": ["x"]}), "name", predictor=trained_predictor)


def test_classify_frame_names_a_missing_column(trained_predictor):
    with pytest.raises(BatchInputError, match="no column 'surname'; its columns are: 'name'"):
        classify_frame(pd.DataFrame({"name": ["Bakov"]}), "surname", predictor=trained_predictor)


def test_classify_table_keeps_the_table_and_records_the_model_id(trained_predictor):
    table = pa.table({"id": [1, 2], "name": ["Bakov", None]}).replace_schema_metadata({"owner": "me"})
    result = classify_table(table, "name", predictor=trained_predictor, all_labels=True)
    assert result.select(["id", "name"]).equals(table.replace_schema_metadata(None))
    assert result.schema.metadata[b"owner"] == b"me"
    assert result.schema.metadata[MODEL_ID_METADATA_KEY].decode() == trained_predictor.checkpoint.model_id
    assert [f"p_{label}" for label in trained_predictor.labels] == result.column_names[-len(trained_predictor.labels) :]


def test_classify_frame_answers_as_the_command_does_on_the_same_rows(
    tmp_path, trained_checkpoint, trained_predictor, capsys
):
    names = name_column(1500, seed=9)
    pcsv.write_csv(pa.table({"name": pa.array(names, pa.string())}), tmp_path / "in.csv")
    assert (
        main(
            [
                str(tmp_path / "in.csv"),
                "--column",
                "name",
                "--output",
                str(tmp_path / "out.csv"),
                "--checkpoint",
                str(trained_checkpoint),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    nulls_unquoted = pcsv.ConvertOptions(
        strings_can_be_null=True, quoted_strings_can_be_null=False
    )  # how the command writes them
    command = pcsv.read_csv(tmp_path / "out.csv", convert_options=nulls_unquoted)
    frame = classify_frame(pd.DataFrame({"name": names}), "name", predictor=trained_predictor)
    assert frame["origin_label"].tolist() == command.column("origin_label").to_pylist()
    assert (
        frame["origin_probability"].fillna(-1).tolist()
        == command.column("origin_probability").fill_null(-1).to_pylist()
    )


def test_classify_frame_takes_any_column_label_a_dataframe_may_have(trained_predictor):
    """pd.read_csv(header=None) gives integer labels; a MultiIndex gives tuples."""
    expected = classify_frame(pd.DataFrame({"name": ["Bakov"]}), "name", predictor=trained_predictor)
    numbered = classify_frame(pd.DataFrame([["Bakov"]]), 0, predictor=trained_predictor)
    assert numbered["origin_reason"].tolist() == expected["origin_reason"].tolist()
    assert numbered["origin_label"].tolist() == expected["origin_label"].tolist()
    multi = pd.DataFrame([["Bakov", "x"]], columns=pd.MultiIndex.from_tuples([("a", "n"), ("a", "m")]))
    assert classify_frame(multi, ("a", "n"), predictor=trained_predictor)["origin_label"].tolist() == (
        expected["origin_label"].tolist()
    )
    with pytest.raises(BatchInputError, match="no column '0'"):
        classify_frame(pd.DataFrame([["Bakov"]]), "0", predictor=trained_predictor)


def test_classify_frame_refuses_a_duplicated_or_repeated_name_column(trained_predictor):
    with pytest.raises(BatchInputError, match="has 'n' more than once"):
        classify_frame(pd.DataFrame([["Bakov", "x"]], columns=["n", "n"]), "n", predictor=trained_predictor)
    with pytest.raises(BatchInputError, match="has 'n' more than once"):
        classify_table(pa.table([["Bakov"], ["x"]], names=["n", "n"]), "n", predictor=trained_predictor)
    with pytest.raises(BatchInputError, match="the same column is given twice"):
        classify_frame(pd.DataFrame({"n": ["Bakov"]}), ["n", "n"], predictor=trained_predictor)


def test_classify_frame_refuses_containers_reads_bytes_as_text_and_survives_a_lone_surrogate(trained_predictor):
    with pytest.raises(BatchInputError, match=r"holds list.*, not text"):
        classify_frame(pd.DataFrame({"n": [["Bakov"]]}), "n", predictor=trained_predictor)
    as_bytes = classify_frame(pd.DataFrame({"n": [b"Bakov"]}), "n", predictor=trained_predictor)
    as_text = classify_frame(pd.DataFrame({"n": ["Bakov"]}), "n", predictor=trained_predictor)
    assert as_bytes["origin_label"].tolist() == as_text["origin_label"].tolist()
    broken = classify_frame(pd.DataFrame({"n": ["Bak\ud800ov", "Bakov"]}), "n", predictor=trained_predictor)
    assert broken["origin_reason"].tolist()[1] == as_text["origin_reason"].tolist()[0]
    # the predictor leaves a lone surrogate out; the frame did read it as U+FFFD ("Sm\udfffith" 0.67 English, 0.99 as Smith)
    expected = trained_predictor.predict(["Bak\ud800ov"])[0]
    assert broken["origin_reason"].tolist()[0] == expected.reason
    assert broken["origin_label"].tolist()[0] == (expected.predictions[0].label if expected.predictions else None)
    assert broken["origin_probability"].tolist()[0] == pytest.approx(
        expected.predictions[0].probability if expected.predictions else float("nan"), nan_ok=True
    )


def test_a_missing_date_abstains_as_empty_not_as_the_text_nat(trained_predictor):
    """pd.NaT was read as the text "NaT" and labelled Korean."""
    df = pd.DataFrame({"name": [pd.NaT, "Bakov", np.float32("nan")]}, dtype=object)
    result = classify_frame(df, "name", predictor=trained_predictor)
    assert result["origin_reason"].tolist()[0::2] == ["empty", "empty"]
    assert result["origin_label"].tolist()[1] is not None


@pytest.mark.parametrize(
    ("values", "holds"),
    [
        (pd.Series([True, False]), "bool"),  # True was Vietnamese, False English
        (pd.Series([True, None], dtype="boolean"), "bool"),
        (pd.Series([True, False], dtype="category"), "bool"),  # a dictionary's values decide
        (pd.Series([uuid.UUID(int=1)]), "UUID values"),  # Arrow's own extension type: raw bytes were read
        (pd.Series(["Bakov", True], dtype=object), "bool values"),
        (pd.to_timedelta(pd.Series([1, 2]), unit="D"), "duration"),  # "1 days" was English
        (pd.Series(["Bakov", object()], dtype=object), "object values"),  # its repr was Russian
        (pd.Series([["Bakov"]], dtype=pd.ArrowDtype(pa.list_(pa.string()))), "list<"),  # Arrow's own error, raw
    ],
)
def test_classify_frame_refuses_values_whose_text_is_no_name(trained_predictor, values, holds):
    with pytest.raises(BatchInputError, match=f"holds {re.escape(holds)}.*not text"):
        classify_frame(pd.DataFrame({"n": values}), "n", predictor=trained_predictor)


def test_a_float_nan_abstains_as_empty_in_every_column_type(trained_predictor):
    """An Arrow float NaN (Parquet, ArrowDtype) was read as the text "nan" and judged not-a-name."""
    arrow_nan = pd.Series([float("nan"), 1.5], dtype=pd.ArrowDtype(pa.float64()))
    assert classify_frame(pd.DataFrame({"n": arrow_nan}), "n", predictor=trained_predictor)[
        "origin_reason"
    ].tolist() == ["empty", "no-letters"]
    table = classify_table(pa.table({"n": pa.array([float("nan"), None, 2.5])}), "n", predictor=trained_predictor)
    assert table.column("origin_reason").to_pylist() == ["empty", "empty", "no-letters"]


def test_periods_and_intervals_are_read_as_their_text(trained_predictor):
    for values in (pd.period_range("2020-01", periods=2, freq="M"), pd.interval_range(0, 2)):
        result = classify_frame(pd.DataFrame({"n": values}), "n", predictor=trained_predictor)
        assert result["origin_reason"].tolist() == ["no-letters", "no-letters"]


def test_options_are_checked_by_type_whatever_the_rows(trained_predictor):
    """An empty or all-null frame never reaches the predictor, whose checks let these through there."""
    for frame in (pd.DataFrame({"n": pd.Series([], dtype=object)}), pd.DataFrame({"n": [None]})):
        for options, message in [
            ({"top_k": True}, "top_k must be a whole number"),
            ({"top_k": 2.5}, "top_k must be a whole number"),
            ({"top_k": "3"}, "top_k must be a whole number"),
            ({"min_probability": True}, "min_probability must be a number"),
            ({"chunk_rows": 2.5}, "chunk_rows must be a whole number"),
            ({"batch_size": 0}, "batch_size must be at least 1"),
            ({"all_labels": "yes"}, "all_labels must be True or False"),
        ]:
            with pytest.raises(ValueError, match=message):
                classify_frame(frame, "n", predictor=trained_predictor, **options)
    result = classify_frame(pd.DataFrame({"n": ["Bakov"]}), "n", predictor=trained_predictor, top_k=np.int64(2))
    assert len(result.loc[0, "origin_top_k"]) == 2  # numpy's integers, what a value read from a frame is


def test_spaces_around_a_cell_do_not_make_it_too_long(trained_predictor):
    """A CHAR(300) column pads "Bakov" to 300 characters: it abstained as too-long, blank ones too."""
    df = pd.DataFrame({"n": ["Bakov" + " " * 300, " " * 300, "Bakov", "x" * 300]})
    result = classify_frame(df, "n", predictor=trained_predictor)
    assert result["origin_reason"].tolist()[1:] == ["empty", result["origin_reason"][2], "too-long"]
    assert result["origin_label"][0] == result["origin_label"][2] is not None


def test_origin_top_k_is_an_object_column_even_when_the_frame_is_empty(trained_predictor):
    result = classify_frame(pd.DataFrame({"n": pd.Series([], dtype=object)}), "n", predictor=trained_predictor)
    assert result["origin_top_k"].dtype == object


def test_name_column_lists_are_checked_in_the_callers_own_names(trained_predictor):
    df = pd.DataFrame({"g": ["Ann"], "m": ["B"], "s": ["Bakov"]})
    with pytest.raises(BatchInputError, match=r"got 3: \['g', 'm', 's'\]"):
        classify_frame(df, ["g", "m", "s"], predictor=trained_predictor)
    with pytest.raises(BatchInputError, match="got 0"):
        classify_frame(df, [], predictor=trained_predictor)
    by_index = classify_frame(df, pd.Index(["g", "s"]), predictor=trained_predictor)
    assert (
        by_index["origin_label"].tolist()
        == classify_frame(df, ["g", "s"], predictor=trained_predictor)["origin_label"].tolist()
    )
