"""nameorigin-enrich end to end (batch.cli.main): formats, the added columns, and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.columns import MODEL_ID_METADATA_KEY
from tests.batch_fixtures import name_column
from tests.conftest import REPO_ROOT

ADDED = ["origin_label", "origin_probability", "origin_top_k", "origin_abstained", "origin_reason"]


@pytest.fixture
def enrich(trained_checkpoint, capsys):
    """Run the command in process: returns (exit status, stderr)."""

    def run(*arguments: object) -> tuple[int, str]:
        status = main([*map(str, arguments), "--checkpoint", str(trained_checkpoint), "--device", "cpu"])
        return status, capsys.readouterr().err

    return run


def read_text_csv(path: Path, delimiter: str = ",") -> pa.Table:
    """Every column as text, empty fields as "" (what the command promises to keep)."""
    header = pcsv.open_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter)).schema.names
    return pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False),
    )


def test_enrich_csv_keeps_every_input_column_as_read_and_adds_the_answers(tmp_path, enrich):
    source = tmp_path / "people.csv"
    source.write_text(
        'id,surname,zip\n007,Bakov,00501\n008,"Ziski, jr",02134\n009,,1\n010,"multi\nline",2\n', encoding="utf-8"
    )
    status, stderr = enrich(source, "--column", "surname", "--output", tmp_path / "out.csv")
    assert status == 0, stderr
    table = read_text_csv(tmp_path / "out.csv")
    assert table.column_names == ["id", "surname", "zip", *ADDED, "origin_model_id"]
    assert table.select(["id", "surname", "zip"]).to_pydict() == {
        "id": ["007", "008", "009", "010"],
        "surname": ["Bakov", "Ziski, jr", "", "multi\nline"],
        "zip": ["00501", "02134", "1", "2"],
    }
    first = table.slice(0, 1).to_pylist()[0]
    top_k = json.loads(first["origin_top_k"])
    assert first["origin_label"] == top_k[0]["label"] and float(first["origin_probability"]) == top_k[0]["probability"]
    assert [row["origin_reason"] for row in table.slice(2, 1).to_pylist()] == ["empty"]
    assert "rows: 4" in stderr and "empty 1" in stderr


def test_enrich_answers_equal_the_predictor_for_each_distinct_name(tmp_path, enrich, trained_predictor):
    names = name_column(3000, seed=5, distinct=60)
    pcsv.write_csv(pa.table({"surname": pa.array(names, pa.string())}), tmp_path / "in.csv")
    status, stderr = enrich(
        tmp_path / "in.csv", "--column", "surname", "--output", tmp_path / "out.csv", "--chunk-rows", "700"
    )
    assert status == 0, stderr
    rows = read_text_csv(tmp_path / "out.csv").to_pylist()
    assert len(rows) == len(names)
    distinct = sorted({name for name in names if name and name.strip()})
    expected = dict(zip(distinct, trained_predictor.predict(distinct), strict=True))
    for name, row in zip(names, rows, strict=True):
        answer = expected.get(name)
        if answer is None:
            assert row["origin_reason"] == "empty"
        elif answer.abstained:
            assert (row["origin_label"], row["origin_reason"]) == ("", answer.reason)
        else:
            assert row["origin_label"] == answer.predictions[0].label
            assert float(row["origin_probability"]) == pytest.approx(answer.predictions[0].probability, abs=1e-6)


def test_enrich_explain_adds_each_answered_names_explanation_as_the_predictor_gives_it(
    tmp_path, enrich, trained_predictor
):
    source = tmp_path / "people.csv"
    source.write_text("surname\nBakov\n123\n\nZiski\nBakov\n", encoding="utf-8")
    status, stderr = enrich(source, "--column", "surname", "--output", tmp_path / "out.parquet", "--explain")
    assert status == 0, stderr
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    expected = {answer.name: answer for answer in trained_predictor.predict(["Bakov", "Ziski"], explain=True)}
    for row in rows:
        answer = expected.get(row["surname"])
        if answer is None or row["origin_abstained"]:  # 123 and the blank row: nothing to explain
            assert row["origin_explanation"] is None
            continue
        fragments = json.loads(row["origin_explanation"])
        assert [f["text"] for f in fragments] == list(answer.explanation.fragments)
        assert [f["score"] for f in fragments] == pytest.approx(list(answer.explanation.scores[0]), abs=1e-6)
    assert [row["origin_explanation"] is None for row in rows] == [False, True, True, False, False]


def test_enrich_parquet_keeps_types_and_writes_top_k_as_structs_and_model_id_as_metadata(
    tmp_path, enrich, trained_predictor
):
    source = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "score": [0.5, None, 2.0],
            "name": ["Bakov", None, "Ziski"],
            "seen": pa.array([0, 1, 2], pa.timestamp("ms")),
        }
    )
    pq.write_table(source, tmp_path / "in.parquet")
    status, stderr = enrich(
        tmp_path / "in.parquet", "--column", "name", "--output", tmp_path / "out.parquet", "--all-labels"
    )
    assert status == 0, stderr
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.select(source.column_names).equals(source)
    assert out.schema.field("origin_top_k").type == pa.list_(
        pa.struct([("label", pa.string()), ("probability", pa.float64())])
    )
    assert out.schema.metadata[MODEL_ID_METADATA_KEY].decode() == trained_predictor.checkpoint.model_id
    assert out.column_names[-len(trained_predictor.labels) :] == [f"p_{label}" for label in trained_predictor.labels]
    assert "origin_model_id" not in out.column_names


def test_enrich_jsonl_writes_top_k_as_an_array(tmp_path, enrich):
    (tmp_path / "in.jsonl").write_text('{"name": "Bakov", "n": 1}\n{"name": null, "n": 2}\n', encoding="utf-8")
    status, stderr = enrich(
        tmp_path / "in.jsonl", "--column", "name", "--output", tmp_path / "out.jsonl", "--top-k", "2"
    )
    assert status == 0, stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["n"] for row in rows] == [1, 2]
    assert len(rows[0]["origin_top_k"]) == 2 and rows[0]["origin_top_k"][0]["label"] == rows[0]["origin_label"]
    assert rows[1]["origin_top_k"] == [] and rows[1]["origin_reason"] == "empty"


def test_enrich_joins_given_name_and_surname_columns(tmp_path, enrich, trained_predictor):
    (tmp_path / "in.tsv").write_text("given\tsurname\nAnn\tBakov\n\tZiski\n\t\n", encoding="utf-8")
    status, stderr = enrich(
        tmp_path / "in.tsv", "--column", "given", "--column", "surname", "--output", tmp_path / "out.tsv"
    )
    assert status == 0, stderr
    rows = read_text_csv(tmp_path / "out.tsv", delimiter="\t").to_pylist()
    expected = trained_predictor.predict(["Ann Bakov", "Ziski"])
    assert [row["origin_reason"] or row["origin_label"] for row in rows[:2]] == [
        answer.reason if answer.abstained else answer.predictions[0].label for answer in expected
    ]
    assert rows[2]["origin_reason"] == "empty"


def test_enrich_reads_another_encoding_when_told(tmp_path, enrich):
    (tmp_path / "in.csv").write_bytes("name\nBakov\nMüller\n".encode("latin-1"))
    status, stderr = enrich(
        tmp_path / "in.csv", "--column", "name", "--output", tmp_path / "out.csv", "--encoding", "latin-1"
    )
    assert status == 0, stderr
    assert read_text_csv(tmp_path / "out.csv").column("name").to_pylist() == ["Bakov", "Müller"]


def test_enrich_overwrite_replaces_an_existing_output(tmp_path, enrich):
    (tmp_path / "in.csv").write_text("name\nBakov\n", encoding="utf-8")
    (tmp_path / "out.csv").write_text("old\n", encoding="utf-8")
    assert enrich(tmp_path / "in.csv", "--column", "name", "--output", tmp_path / "out.csv", "--overwrite")[0] == 0
    assert read_text_csv(tmp_path / "out.csv").column("name").to_pylist() == ["Bakov"]


def test_enrich_reads_standard_input_and_writes_standard_output(trained_checkpoint):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch",
            "-",
            "--column",
            "name",
            "--output",
            "-",
            "--checkpoint",
            str(trained_checkpoint),
            "--device",
            "cpu",
        ],
        input=b"name,city\nBakov,Oslo\n,Rome\n",
        capture_output=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert (
        lines[0]
        == '"name","city","origin_label","origin_probability","origin_top_k","origin_abstained","origin_reason","origin_model_id"'
    )
    assert lines[2].startswith('"","Rome",,,"[]",true,"empty"')
    assert b"rows: 2" in result.stderr  # the summary goes to stderr, never into the data


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


BAD_INPUTS = {
    "missing column": (
        "in.csv",
        b"surname\nBakov\n",
        ["--column", "name"],
        "has no column 'name'; its columns are: surname",
    ),
    "non-UTF-8 CSV": (
        "in.csv",
        b"name\nBakov\nM\xfcller\n",
        ["--column", "name"],
        "not valid utf-8 at byte 12 (0xfc), line 3",
    ),
    "empty CSV": ("in.csv", b"", ["--column", "name"], "the file is empty"),
    "empty Parquet": ("in.parquet", b"", ["--column", "name"], "the file is empty"),
    "empty JSON Lines": ("in.jsonl", b"", ["--column", "name"], "the file is empty"),
    "not Parquet": ("in.parquet", b"name\nBakov\n", ["--column", "name"], "not a readable Parquet file"),
    "ragged CSV row": (
        "in.csv",
        b"name,city\nBakov,Oslo\nZiski\n",
        ["--column", "name"],
        "line 3 has 1 fields; the header has 2",
    ),
    "malformed JSON Lines": (
        "in.jsonl",
        b'{"name": "Bakov"}\n{"name": \n',
        ["--column", "name"],
        "not valid JSON Lines at row 2",
    ),
    "column taken": (
        "in.csv",
        b"name,origin_label\nBakov,x\n",
        ["--column", "name"],
        "already has column(s) 'origin_label'",
    ),
    "unknown extension": ("in.xlsx", b"name\n", ["--column", "name"], "cannot tell the format"),
    "bad prior": (
        "in.csv",
        b"name\nBakov\n",
        ["--column", "name", "--prior", "sometimes"],
        "--prior: prior must be dataset or uniform or a JSON object of label weights, got 'sometimes'",
    ),
    "prior of unknown labels": (
        "in.parquet",
        None,
        ["--column", "name", "--prior", '{"Klingon": 1}', "--resume"],
        "Klingon",
    ),
    "top-k beyond labels": (
        "in.csv",
        b"name\nBakov\n",
        ["--column", "name", "--top-k", "9"],
        "top_k must be between 1 and 3",
    ),
    # an audit's findings: a quote left open swallowed the rest of the file with exit 0 (1,000 rows came out as 10)
    "a quote never closed, in the last column": (
        "in.csv",
        b'id,name\n1,Bakov\n2,"Ziski\n3,Rossi\n4,Kowalski\n',
        ["--column", "name"],
        "a double quote on row 2 (the last read) is never closed",
    ),
    "a quote never closed, the file ending in a quote": (
        "in.csv",
        b'id,name\n1,"Ann\n2,Bob\n3,"Carl"\n',
        ["--column", "name"],
        "a double quote on row 1 (the last read) is never closed",
    ),
    "a ragged row after a cell over csv's field limit": (
        "in.csv",
        b"name,note\nBakov," + b"x" * 200_000 + b"\nZiski,ok\nRossi\n",
        ["--column", "name"],
        "line 4 has 1 fields; the header has 2",
    ),
    "a codec that is no text encoding": (
        "in.csv",
        b"name\nBakov\n",
        ["--column", "name", "--encoding", "rot13"],
        "is not a text encoding",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_enrich_bad_input_is_one_line_error_exit_2_and_no_output(tmp_path, enrich, case):
    file_name, content, options, message = BAD_INPUTS[case]
    if content is None:  # a Parquet file
        source = tmp_path / file_name
        pq.write_table(pa.table({"name": ["Bakov"]}), source)
    else:
        source = _write(tmp_path / file_name, content)
    status, stderr = enrich(source, *options, "--output", tmp_path / "out.csv")
    assert status == 2
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert sorted(os.listdir(tmp_path)) == [file_name]  # no output, no temporary file


def test_enrich_unreadable_input_names_the_file(tmp_path, enrich):
    status, stderr = enrich(tmp_path / "missing.csv", "--column", "name", "--output", tmp_path / "out.csv")
    assert status == 2 and f"{tmp_path / 'missing.csv'}: cannot read input" in stderr
    assert os.listdir(tmp_path) == []


def test_enrich_refuses_to_write_over_its_input(tmp_path, enrich):
    source = _write(tmp_path / "in.csv", b"name\nBakov\n")
    status, stderr = enrich(source, "--column", "name", "--output", source, "--overwrite")
    assert status == 2 and "would overwrite the input" in stderr
    assert source.read_bytes() == b"name\nBakov\n"


def test_enrich_refuses_an_existing_output_without_overwrite(tmp_path, enrich):
    source = _write(tmp_path / "in.csv", b"name\nBakov\n")
    output = _write(tmp_path / "out.csv", b"keep me\n")
    status, stderr = enrich(source, "--column", "name", "--output", output)
    assert status == 2 and "pass --overwrite" in stderr
    assert output.read_bytes() == b"keep me\n"


def test_enrich_error_halfway_through_leaves_no_output(tmp_path, enrich):
    rows = b"".join(b"Bakov,%d\n" % index for index in range(5000))
    source = _write(tmp_path / "in.csv", b"name,n\n" + rows + b"Ziski\n")  # ragged last row, after chunks were written
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.csv", "--chunk-rows", "1000")
    assert status == 2 and "line 5002 has 1 fields" in stderr
    assert sorted(os.listdir(tmp_path)) == ["in.csv"]


def test_enrich_output_keeps_a_replaced_files_mode_and_a_new_one_follows_the_umask(tmp_path, enrich):
    """Names are personal data: --overwrite must not make a private file readable by everyone."""
    source = tmp_path / "in.csv"
    source.write_text("surname\nBakov\n", encoding="utf-8")
    private = tmp_path / "private.csv"
    private.write_text("secret\n", encoding="utf-8")
    private.chmod(0o600)
    status, _ = enrich(source, "--column", "surname", "--output", private, "--overwrite")
    assert status == 0 and (private.stat().st_mode & 0o777) == 0o600
    assert "Bakov" in private.read_text(encoding="utf-8")
    previous = os.umask(0o027)
    try:
        status, _ = enrich(source, "--column", "surname", "--output", tmp_path / "new.csv")
    finally:
        os.umask(previous)
    assert status == 0 and ((tmp_path / "new.csv").stat().st_mode & 0o777) == 0o640


@pytest.mark.parametrize("threads", ["-1", "100000"])
def test_enrich_refuses_an_impossible_thread_count_with_an_error(tmp_path, enrich, threads):
    """torch raises for a negative count and kills the process for a huge one."""
    source = tmp_path / "in.csv"
    source.write_text("surname\nBakov\n", encoding="utf-8")
    status, stderr = enrich(source, "--column", "surname", "--output", tmp_path / "out.csv", "--num-threads", threads)
    assert status == 2 and f"num_threads must be an integer from 0 to 256, got {threads}" in stderr
    assert not (tmp_path / "out.csv").exists()


def test_enrich_names_the_row_size_limit_for_a_row_longer_than_a_read_block(tmp_path, enrich):
    source = tmp_path / "in.csv"
    source.write_text("surname,note\nBakov,short\nZiski," + "x" * (20 << 20) + "\n", encoding="utf-8")
    status, stderr = enrich(source, "--column", "surname", "--output", tmp_path / "out.csv")
    assert status == 2 and "a row longer than 4 MiB, the most one row may hold" in stderr
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("suffix", "rows_before", "long_row"),
    [
        (".csv", "surname,note\n" + "Bakov,a\n" * 20_000, "Ziski," + "x" * (4 * 1024 * 1024 - 64) + "\n"),
        (
            ".jsonl",
            '{"surname": "Bakov"}\n' * 20_000,
            '{"surname": "' + "x" * (8 * 1024 * 1024 - 64) + '"}\n',
        ),
    ],
)
def test_enrich_reads_a_row_as_long_as_a_read_block_wherever_it_stands(tmp_path, enrich, suffix, rows_before, long_row):
    """The input stream handed pyarrow short reads, which it took for whole blocks: a row of 2 MiB was
    refused as longer than the 4 MiB a row may hold."""
    source = tmp_path / f"in{suffix}"
    source.write_text(rows_before + long_row, encoding="utf-8")
    status, stderr = enrich(source, "--column", "surname", "--output", tmp_path / f"out{suffix}")
    assert status == 0, stderr


def test_enrich_writes_a_binary_column_to_json_lines_as_base64(tmp_path, enrich):
    import base64

    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"surname": ["Bakov"], "blob": pa.array([b"\x00\xffid"], pa.binary())}), source)
    status, _ = enrich(source, "--column", "surname", "--output", tmp_path / "out.jsonl")
    assert status == 0
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert base64.b64decode(row["blob"]) == b"\x00\xffid" and row["surname"] == "Bakov"


def test_enrich_reads_a_header_without_a_line_break_as_a_file_of_no_rows(tmp_path, enrich):
    for text in ("surname", "surname\n"):
        source = tmp_path / "in.csv"
        source.write_text(text, encoding="utf-8")
        output = tmp_path / "out.csv"
        status, stderr = enrich(source, "--column", "surname", "--output", output, "--overwrite")
        assert status == 0, stderr
        assert read_text_csv(output).num_rows == 0 and read_text_csv(output).column_names[0] == "surname"


def test_enrich_refuses_three_name_columns_even_in_a_file_of_no_rows(tmp_path, enrich):
    source = tmp_path / "in.csv"
    source.write_text("a,b,c\n", encoding="utf-8")
    status, stderr = enrich(source, "--column", "a", "--column", "b", "--column", "c", "--output", tmp_path / "o.csv")
    assert status == 2 and "give one name column or two (given name, surname), got 3" in stderr
    assert not (tmp_path / "o.csv").exists()


def test_enrich_skips_blank_lines_before_the_header(tmp_path, enrich):
    """A leading blank line was taken for the header: "line 2 has 2 fields; the header has 1"."""
    source = _write(tmp_path / "in.csv", b"\n\r\n  \nname,id\nBakov,1\n")
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.csv")
    assert status == 0, stderr
    assert read_text_csv(tmp_path / "out.csv").select(["name", "id"]).to_pydict() == {"name": ["Bakov"], "id": ["1"]}


def test_enrich_keeps_a_multiline_quoted_last_field_that_is_closed(tmp_path, enrich):
    source = _write(tmp_path / "in.csv", b'name,note\nBakov,"line one\nline two"\n' + b"\r\n" * 40)
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.csv")
    assert status == 0, stderr
    assert read_text_csv(tmp_path / "out.csv").column("note").to_pylist() == ["line one\nline two"]


def test_enrich_a_json_value_nested_too_deep_to_write_is_an_error_not_a_traceback(tmp_path, enrich):
    source = _write(tmp_path / "in.jsonl", b'{"name": "Bakov", "d": ' + b"[" * 300 + b"]" * 300 + b"}\n")
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.jsonl")
    assert status == 2 and stderr.count("\n") == 1 and "cannot be written as JSON Lines" in stderr
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_enrich_a_parquet_output_failing_halfway_prints_one_line(tmp_path, enrich):
    """The Parquet writer left open printed "Exception ignored in: ParquetWriter.__del__" after the error."""
    rows = b"".join(b"Bakov,%d\n" % index for index in range(3000))
    source = _write(tmp_path / "in.csv", b"name,n\n" + rows + b"Ziski\n")
    status, stderr = enrich(source, "--column", "name", "--output", tmp_path / "out.parquet", "--chunk-rows", "1000")
    assert status == 2 and stderr.count("\n") == 1 and "line 3002 has 1 fields" in stderr, stderr
    assert sorted(os.listdir(tmp_path)) == ["in.csv"]


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "fifo"])
def test_enrich_refuses_an_output_that_is_no_regular_file(tmp_path, enrich, kind):
    """Renamed over, a link became a file (its target never written) and a FIFO or device a regular file."""
    source = _write(tmp_path / "in.csv", b"name\nBakov\n")
    output = tmp_path / "out.csv"
    if kind == "fifo":
        os.mkfifo(output)
    else:
        target = tmp_path / "target.csv"
        if kind == "symlink":
            target.write_bytes(b"keep me\n")
        output.symlink_to(target)
    status, stderr = enrich(source, "--column", "name", "--output", output, "--overwrite")
    assert status == 2 and ("symbolic link" in stderr or "not a regular file" in stderr), stderr
    assert output.is_symlink() or output.is_fifo()


def test_enrich_to_a_pipe_its_reader_closes_ends_in_one_line_exit_1(tmp_path, trained_checkpoint):
    """`| head` ended in "error: [Errno 32] Broken pipe" (and could end in the interpreter's own
    traceback when it flushed standard output at exit)."""
    source = _write(tmp_path / "in.csv", b"name\n" + b"".join(b"Bakov%d\n" % index for index in range(20_000)))
    command = [sys.executable, "-m", "batch", source, "--column", "name", "--output", "-", "--chunk-rows", "500"]
    command += ["--checkpoint", str(trained_checkpoint), "--device", "cpu", "--quiet"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith(b'"name"')
        process.stdout.close()
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=120) == 1
    assert stderr == "error: standard output was closed by its reader; the output stops part-way\n"


def test_enrich_reads_a_float_nan_as_missing_and_refuses_a_boolean_column(tmp_path, enrich):
    """A Parquet NaN was read as the text "nan" (not-a-name, counted so); true/false as "true" (Vietnamese)."""
    pq.write_table(
        pa.table({"n": pa.array([float("nan"), 2.5, None]), "b": [True, False, True]}), tmp_path / "in.parquet"
    )
    status, stderr = enrich(tmp_path / "in.parquet", "--column", "n", "--output", tmp_path / "out.parquet")
    assert status == 0, stderr
    assert pq.read_table(tmp_path / "out.parquet").column("origin_reason").to_pylist() == [
        "empty",
        "no-letters",
        "empty",
    ]
    status, stderr = enrich(tmp_path / "in.parquet", "--column", "b", "--output", tmp_path / "out2.parquet")
    assert status == 2 and "column 'b' holds bool values, not text" in stderr
    assert not (tmp_path / "out2.parquet").exists()
