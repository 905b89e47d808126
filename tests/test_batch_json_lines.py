"""JSON Lines input whose column types change after Arrow's first block (batch.json_schema): sparse
fields, objects that gain keys, dates with one free-text value, read whole; conflicts refused by name.

The reader's block is made 16 KiB here (batch.readers.JSON_BLOCK_BYTES, 8 MiB as shipped), so a few
hundred rows span several blocks."""

from __future__ import annotations

import io
import json
import os

import pyarrow as pa
import pytest

import batch.readers
from batch.cli import main
from batch.errors import BatchInputError
from batch.json_schema import scan_schema
from batch.textstream import CheckedTextStream

BLOCK_BYTES = 16 << 10


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(batch.readers, "JSON_BLOCK_BYTES", BLOCK_BYTES)


@pytest.fixture
def enrich(trained_checkpoint, capsys, small_blocks):
    def run(*arguments: object) -> tuple[int, str]:
        status = main([*map(str, arguments), "--checkpoint", str(trained_checkpoint), "--device", "cpu"])
        return status, capsys.readouterr().err

    return run


def _rows(count: int, early: dict[str, object], late: dict[str, object]) -> list[dict[str, object]]:
    """`count` rows with `early`'s values, then five with `late`'s: the late ones far past the first block."""
    return [{"id": index, "name": "Bakov", **early} for index in range(count)] + [
        {"id": count + index, "name": "Ziski", **late} for index in range(5)
    ]


def _write_jsonl(path, rows: list[dict[str, object]]):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    assert path.stat().st_size > 3 * BLOCK_BYTES
    return path


def _read_jsonl(path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


CHANGES = {
    "null, then text": ({"email": None}, {"email": "a@b.c"}),
    "null, then an object": ({"address": None}, {"address": {"city": "Oslo"}}),
    "an object gains a key": ({"address": {"city": "Oslo"}}, {"address": {"city": "Rome", "zip": "00100"}}),
    "an empty list, then numbers": ({"tags": []}, {"tags": [1, 2]}),
    "whole numbers, then a fraction": ({"score": 2}, {"score": 2.5}),
    "dates, then other text": ({"born": "1970-01-01"}, {"born": "unknown"}),
    "a field only late rows have": ({}, {"note": "late"}),
}


@pytest.mark.parametrize("case", CHANGES)
def test_a_column_whose_type_changes_after_the_first_block_is_read_whole(tmp_path, enrich, case):
    early, late = CHANGES[case]
    rows = _rows(3000, early, late)
    source = _write_jsonl(tmp_path / "in.jsonl", rows)
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 0, stderr
    written = _read_jsonl(tmp_path / "out.jsonl")
    assert len(written) == len(rows) and [row["id"] for row in written] == [row["id"] for row in rows]
    (column,) = {*early, *late}
    for row, out in zip(rows, written, strict=True):
        value, kept = row.get(column), out[column]
        if isinstance(value, dict) and isinstance(kept, dict):  # an object keeps its keys; the others' are null
            assert {key: item for key, item in kept.items() if item is not None} == value
        else:
            assert kept == value, (row, out)
        assert out["origin_abstained"] is False and out["origin_label"]


def test_numbers_then_text_across_blocks_are_refused_by_column_and_rows(tmp_path, enrich):
    rows = _rows(3000, {"zip": 501}, {"zip": "00501"})
    # The text starts a block of its own, so each block parses alone and the conflict is between blocks.
    text = "".join(json.dumps(row) + "\n" for row in rows[:3000])
    text += " " * (-len(text.encode()) % BLOCK_BYTES)  # pad the numbers to whole blocks with blank space
    text += "".join(json.dumps(row) + "\n" for row in rows[3000:])
    source = tmp_path / "in.jsonl"
    source.write_text(text, encoding="utf-8")
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 2 and stderr.count("\n") == 1, stderr
    assert "column 'zip' holds numbers (int64) in rows 1-3000 and text (string) in rows 3001-3005" in stderr
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_numbers_then_text_in_one_block_are_refused_with_the_row(tmp_path, enrich):
    rows = _rows(3000, {"zip": 501}, {"zip": "00501"})
    source = _write_jsonl(tmp_path / "in.jsonl", rows)
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 2 and stderr.count("\n") == 1, stderr
    assert "the value at row 3001 is of another type than its column's in the rows before" in stderr
    assert "write the odd ones as text" in stderr
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_standard_input_is_typed_from_its_first_block_and_says_how_to_read_it_whole(tmp_path, enrich, monkeypatch):
    data = "".join(json.dumps(row) + "\n" for row in _rows(3000, {"email": None}, {"email": "a@b.c"}))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    status, stderr = enrich("-", "--format", "jsonl", "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 2 and stderr.count("\n") == 1, stderr
    assert "standard input: the value at row 3001 is of another type" in stderr
    assert "standard input is read once" in stderr and "give a file by name" in stderr
    assert os.listdir(tmp_path) == []


def test_a_file_of_one_block_is_not_read_twice(tmp_path, enrich, monkeypatch):
    scans = []
    monkeypatch.setattr(batch.readers, "scan_schema", lambda *arguments: scans.append(arguments))
    source = tmp_path / "in.jsonl"
    source.write_text('{"name": "Bakov", "email": null}\n{"name": "Ziski", "email": "a@b.c"}\n', encoding="utf-8")
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 0, stderr
    assert scans == [] and [row["email"] for row in _read_jsonl(tmp_path / "out.jsonl")] == [None, "a@b.c"]


def _scan(text: bytes, block_bytes: int = 64) -> pa.Schema | None:
    return scan_schema(CheckedTextStream(io.BytesIO(text), "in.jsonl"), "in.jsonl", block_bytes)


def test_the_scan_merges_every_block_and_keeps_the_first_seen_column_order():
    text = b'{"a": null, "b": 1}\n' * 20 + b'{"c": [1], "b": 2.5, "a": {"k": true}}\n' + b'{"a": {"j": "x"}}\n' * 5
    schema = _scan(text)
    assert schema is not None and schema.names == ["a", "b", "c"]
    assert schema.field("a").type == pa.struct([("k", pa.bool_()), ("j", pa.string())])
    assert schema.field("b").type == pa.float64() and schema.field("c").type == pa.list_(pa.int64())


def test_the_scan_leaves_a_block_that_does_not_parse_to_the_reader():
    assert _scan(b'{"a": 1}\n' * 20 + b'{"a": \n' + b'{"a": 2}\n' * 20) is None


def test_the_scan_refuses_a_line_longer_than_two_blocks():
    with pytest.raises(BatchInputError, match="a row longer than"):
        scan_schema(CheckedTextStream(io.BytesIO(b'{"a": "' + b"x" * (3 << 20) + b'"}\n'), "in"), "in", 1 << 20)


def test_the_scan_checks_the_encoding_as_the_reader_does():
    with pytest.raises(BatchInputError, match="not valid utf-8 at byte"):
        _scan(b'{"a": "ok"}\n' * 20 + b'{"a": "M\xfcller"}\n')


def test_lines_ended_by_carriage_returns_alone_are_read_whole(tmp_path, enrich):
    """The scan cut blocks at line feeds only: such a file over two blocks was refused as one long row."""
    rows = _rows(3000, {"email": None}, {"email": "a@b.c"})
    source = tmp_path / "in.jsonl"
    source.write_bytes("".join(json.dumps(row) + "\r" for row in rows).encode())
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 0, stderr
    assert [row["email"] for row in _read_jsonl(tmp_path / "out.jsonl")][-6:] == [None, *["a@b.c"] * 5]


def test_a_file_in_another_encoding_is_scanned_by_what_it_spells_out_to(tmp_path, enrich):
    """Arrow's blocks are of UTF-8: a Latin-1 file under one block in bytes can be over it as UTF-8."""
    rows = [{"name": "Bakov", "x": None, "pad": "\u00e9" * 100} for _ in range(100)] + [{"name": "Ziski", "x": "a"}]
    source = tmp_path / "in.jsonl"
    source.write_bytes("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("latin-1"))
    assert source.stat().st_size < BLOCK_BYTES < len(source.read_bytes().decode("latin-1").encode())
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.jsonl", "--encoding", "latin-1")
    assert status == 0, stderr
    assert _read_jsonl(tmp_path / "out.jsonl")[-1]["x"] == "a"


def test_standard_input_says_how_to_read_it_whole_for_a_fraction_among_whole_numbers(tmp_path, enrich, monkeypatch):
    data = "".join(json.dumps(row) + "\n" for row in _rows(3000, {"score": 2}, {"score": 2.5}))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    status, stderr = enrich("-", "--format", "jsonl", "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 2 and "standard input is read once" in stderr, stderr


@pytest.mark.parametrize(
    ("early", "late"),
    [({"meta": {"d": "hello"}}, {"meta": {"d": "2020-01-01"}}), ({"tags": ["x"]}, {"tags": ["2020-01-01"]})],
)
def test_text_then_whole_blocks_of_dates_inside_objects_and_lists_are_read_as_text(tmp_path, enrich, early, late):
    """Dates and text were merged as text at the top level only: nested, the file was refused."""
    rows = [{"name": "Bakov", **early}] * 2000 + [{"name": "Ziski", **late}] * 2000
    source = _write_jsonl(tmp_path / "in.jsonl", rows)
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 0, stderr
    column = next(iter(early))
    assert [row[column] for row in _read_jsonl(tmp_path / "out.jsonl")] == [row[column] for row in rows]
