"""batch.names: which text a row's name is, and the key that shares one answer between rows."""

import pyarrow as pa
import pytest

from batch.errors import BatchInputError
from batch.names import dedup_key, name_text


def test_dedup_key_is_the_same_for_case_spacing_and_unicode_form_variants():
    variants = ["Müller", "MÜLLER", "  müller ", "Mu\u0308ller", "ｍüller"]
    assert {dedup_key(variant) for variant in variants} == {"müller"}


def test_dedup_key_keeps_apart_names_the_predictor_tells_apart():
    assert dedup_key("Großmann") != dedup_key("Grossmann")  # ß is German evidence; casefold would merge them
    assert dedup_key("GROẞMANN") == dedup_key("Großmann")
    assert dedup_key("Yılmaz") != dedup_key("YILMAZ")


def test_dedup_key_collapses_inner_whitespace_runs():
    assert dedup_key("Van \t  Dyke") == dedup_key("van dyke") == "van dyke"


@pytest.mark.parametrize("missing", [None, "", "   ", "\t\n", "\u3000"])
def test_dedup_key_is_empty_for_missing_or_blank_names(missing):
    assert dedup_key(missing) == ""


def test_name_text_joins_given_name_and_surname_skipping_missing_parts():
    table = pa.table({"given": ["Ann", None, "", " Bo ", None], "surname": ["Lee", "Smith", "Jones", None, "  "]})
    assert name_text(table, ["given", "surname"], "t").to_pylist() == ["Ann Lee", "Smith", "Jones", "Bo", None]


def test_name_text_replaces_cells_too_long_to_be_a_name_with_one_stand_in():
    from batch.names import MAX_CELL_CHARACTERS, TOO_LONG_STAND_IN

    table = pa.table({"name": ["Lee", "a" * (MAX_CELL_CHARACTERS + 1), "b " * 400, "c" * MAX_CELL_CHARACTERS, None]})
    texts = name_text(table, ["name"], "t").to_pylist()
    assert texts == ["Lee", TOO_LONG_STAND_IN, TOO_LONG_STAND_IN, "c" * MAX_CELL_CHARACTERS, None]


def test_name_text_reads_a_non_text_column_as_its_text():
    table = pa.table({"code": pa.array([12, None], pa.int64())})
    assert name_text(table, ["code"], "t").to_pylist() == ["12", None]


def test_name_text_refuses_a_nested_column_naming_it():
    table = pa.table({"names": pa.array([["a"]], pa.list_(pa.string()))})
    with pytest.raises(BatchInputError, match="'names'"):
        name_text(table, ["names"], "t.parquet")


def test_name_text_refuses_three_columns():
    table = pa.table({"a": ["x"], "b": ["y"], "c": ["z"]})
    with pytest.raises(BatchInputError, match="one name column or two"):
        name_text(table, ["a", "b", "c"], "t")
