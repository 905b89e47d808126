"""batch.spark in Spark local mode: classify_column and the `python -m batch.spark` job, row for row
against the predictor. One local[2] session for the module (a JVM start costs seconds)."""

from __future__ import annotations

import datetime
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from batch.errors import BatchInputError
from batch.predictors import cache_info
from batch.spark import classify_column
from batch.spark.__main__ import main as spark_main
from batch.spark.output import SparkOutput
from model.canary import CanaryError
from tests.batch_fixtures import name_column
from tests.checkpoint_fixtures import rewritten, with_shuffled_alphabet

pytestmark = pytest.mark.timeout(300)  # a hung JVM or child fails the test instead of stalling CI


@pytest.fixture(scope="module")
def spark():
    saved = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers must run this venv's interpreter
    session = (
        SparkSession.builder.master("local[2]")
        .appName("test-batch")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    if saved is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = saved


@pytest.fixture(scope="module")
def names():
    return name_column(2000, seed=11, distinct=200)


@pytest.fixture(scope="module")
def enriched_rows(spark, trained_checkpoint, names):
    df = spark.createDataFrame([(index, name) for index, name in enumerate(names)], "id long, name string").repartition(
        8
    )
    return sorted(classify_column(df, "name", checkpoint_path=trained_checkpoint).collect(), key=lambda row: row.id)


def test_classify_column_answers_equal_the_predictors_row_for_row(enriched_rows, names, trained_predictor):
    assert [row.name for row in enriched_rows] == names
    distinct = sorted({name for name in names if name and name.strip()})
    expected = dict(zip(distinct, trained_predictor.predict(distinct), strict=True))
    for row in enriched_rows:
        answer = expected.get(row.name)
        if answer is None:
            assert (row.origin_abstained, row.origin_reason, row.origin_top_k) == (True, "empty", [])
            continue
        assert (row.origin_abstained, row.origin_reason) == (answer.abstained, answer.reason), row.name
        assert [entry.label for entry in row.origin_top_k] == [p.label for p in answer.predictions]
        if not answer.abstained:
            assert row.origin_label == answer.predictions[0].label
            assert row.origin_probability == pytest.approx(answer.predictions[0].probability, abs=1e-6)
        assert row.origin_model_id == trained_predictor.checkpoint.model_id


def test_classify_column_loads_the_checkpoint_once_per_worker_process(spark, enriched_rows):
    # The 8 partitions above ran on local[2]'s reused Python workers; a probe of the same kind (an Arrow
    # map) asks those workers how often they loaded a checkpoint and how often they found it loaded.
    def probe(batches):
        for _ in batches:
            pass
        info = cache_info()
        yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "misses": [info.misses], "hits": [info.hits]})

    df = spark.range(8).repartition(8)
    reports = df.mapInArrow(probe, "pid long, misses long, hits long").collect()
    per_worker = {row.pid: (row.misses, row.hits) for row in reports}
    assert all(misses <= 1 for misses, _ in per_worker.values()), per_worker
    assert sum(misses for misses, _ in per_worker.values()) >= 1, per_worker  # the probe ran where the model was loaded
    assert sum(hits for _, hits in per_worker.values()) >= 1, per_worker  # and a later partition reused it


def test_classify_column_declares_its_output_schema(spark, trained_checkpoint, trained_predictor):
    df = spark.createDataFrame([("Bakov",)], "name string")
    schema = classify_column(df, "name", checkpoint_path=trained_checkpoint, all_labels=True, top_k=2).schema
    fields = {field.name: field.dataType for field in schema.fields}
    assert fields["origin_top_k"] == T.ArrayType(
        T.StructType([T.StructField("label", T.StringType()), T.StructField("probability", T.DoubleType())]), True
    )
    assert fields["origin_abstained"] == T.BooleanType() and fields["origin_probability"] == T.DoubleType()
    assert [name for name in fields if name.startswith("p_")] == [f"p_{label}" for label in trained_predictor.labels]
    assert schema.names[0] == "name" and schema.names[-1] == "origin_model_id"


def test_spark_job_writes_the_enriched_parquet(spark, tmp_path, trained_checkpoint, names, trained_predictor):
    source = pa.table({"id": pa.array(range(len(names)), pa.int64()), "name": pa.array(names, pa.string())})
    pq.write_table(source, tmp_path / "in.parquet")
    status = spark_main(
        [
            "--input",
            str(tmp_path / "in.parquet"),
            "--output",
            str(tmp_path / "out"),
            "--column",
            "name",
            "--checkpoint",
            str(trained_checkpoint),
            "--top-k",
            "1",
        ]
    )
    assert status == 0
    written = pq.read_table(tmp_path / "out").sort_by("id")
    assert written.column("name").to_pylist() == names
    answered = [row for row in written.to_pylist() if not row["origin_abstained"]]
    expected = dict(
        zip(
            (row["name"] for row in answered),
            trained_predictor.predict([row["name"] for row in answered], top_k=1),
            strict=True,
        )
    )
    assert all(row["origin_label"] == expected[row["name"]].predictions[0].label for row in answered)
    assert all(len(row["origin_top_k"]) == 1 for row in answered)


def test_spark_job_names_a_missing_column_and_exits_2(spark, tmp_path, trained_checkpoint, capsys):
    pq.write_table(pa.table({"surname": ["Bakov"]}), tmp_path / "in.parquet")
    status = spark_main(
        [
            "--input",
            str(tmp_path / "in.parquet"),
            "--output",
            str(tmp_path / "out"),
            "--column",
            "name",
            "--checkpoint",
            str(trained_checkpoint),
        ]
    )
    assert status == 2
    assert "has no column 'name'; its columns are: surname" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _job(source, output, checkpoint, *extra: str) -> int:
    return spark_main(
        ["--input", str(source), "--output", str(output), "--column", "name", "--checkpoint", str(checkpoint), *extra]
    )


def _folder_bytes(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_spark_job_refuses_to_write_over_or_into_its_input_even_with_overwrite(
    spark, tmp_path, trained_checkpoint, capsys
):
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(pa.table({"name": ["Bakov", "Ziski"]}), folder / "part.parquet")
    before = _folder_bytes(folder)
    for output in (folder, tmp_path / "data" / "enriched", tmp_path):
        assert _job(folder, output, trained_checkpoint, "--overwrite") == 2
        assert "would overwrite the input" in capsys.readouterr().err
        assert _folder_bytes(folder) == before  # the input is untouched


def test_a_failed_spark_job_leaves_the_previous_output_as_it_was(spark, tmp_path, trained_checkpoint, capsys):
    pq.write_table(pa.table({"name": ["Bakov", "Ziski"]}), tmp_path / "in.parquet")
    output = tmp_path / "out"
    assert _job(tmp_path / "in.parquet", output, trained_checkpoint) == 0
    before = _folder_bytes(output)
    # an existing output without --overwrite: refused before anything runs
    assert _job(tmp_path / "in.parquet", output, trained_checkpoint) == 2
    assert "already exists; give --overwrite" in capsys.readouterr().err
    # a job that fails after writing part of its output: what it wrote goes, the old output stays
    staged = SparkOutput(spark, str(tmp_path / "in.parquet"), str(output))
    with pytest.raises(RuntimeError, match="executor lost"), staged.staged() as staging:
        spark.createDataFrame([("half",)], "name string").write.parquet(staging)
        raise RuntimeError("executor lost")
    assert _folder_bytes(output) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.parquet", "out"]


def test_a_spark_job_replaces_an_output_only_once_it_has_succeeded(spark, tmp_path, trained_checkpoint):
    pq.write_table(pa.table({"name": ["Bakov", "Ziski"]}), tmp_path / "in.parquet")
    output = tmp_path / "out"
    assert _job(tmp_path / "in.parquet", output, trained_checkpoint, "--top-k", "2") == 0
    assert _job(tmp_path / "in.parquet", output, trained_checkpoint, "--top-k", "1", "--overwrite") == 0
    assert all(len(entries) <= 1 for entries in pq.read_table(output).column("origin_top_k").to_pylist())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.parquet", "out"]  # nothing staged left behind


def test_spark_job_refuses_a_nested_name_column_on_the_driver(spark, tmp_path, trained_checkpoint, capsys):
    pq.write_table(pa.table({"name": [["Bakov"], ["Ziski"]]}), tmp_path / "in.parquet")
    assert _job(tmp_path / "in.parquet", tmp_path / "out", trained_checkpoint) == 2
    assert "holds array<string>, not text" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["name", "name"], "the same column is given twice"),
        (["name", "id", "name"], "give one name column, or two"),
        ([], "give one name column, or two"),
    ],
)
def test_classify_column_refuses_column_lists_the_command_refuses_on_the_driver(
    spark, trained_checkpoint, columns, message
):
    """["name", "name"] was classified as "Smith Smith"; three columns failed in a worker with a Java trace."""
    df = spark.createDataFrame([("Bakov", "1")], ["name", "id"])
    with pytest.raises(BatchInputError, match=message):
        classify_column(df, columns, checkpoint_path=trained_checkpoint)


def test_classify_column_refuses_an_added_column_in_any_case(spark, trained_checkpoint):
    """Spark matches column names in any case: ORIGIN_LABEL passed the check, then the write failed."""
    df = spark.createDataFrame([("Bakov", "x")], ["name", "ORIGIN_LABEL"])
    with pytest.raises(BatchInputError, match="origin_label"):
        classify_column(df, "name", checkpoint_path=trained_checkpoint)


def test_classify_column_matches_the_name_column_as_spark_does(spark, trained_checkpoint):
    """Spark resolves column names in any case by default (df.select("NAME") finds `name`); the check
    here refused "NAME" as missing. A match in two cases is ambiguous to Spark, and refused."""
    df = spark.createDataFrame([("Bakov", "Smith")], ["surname", "Given"])
    (row,) = classify_column(df, "SURNAME", checkpoint_path=trained_checkpoint).collect()
    (plain,) = classify_column(df, "surname", checkpoint_path=trained_checkpoint).collect()
    assert row == plain and row["surname"] == "Bakov"
    (pair,) = classify_column(df, ["given", "SurName"], checkpoint_path=trained_checkpoint).collect()
    assert pair["origin_label"] is not None
    with pytest.raises(BatchInputError, match="the same column is given twice"):
        classify_column(df, ["surname", "SURNAME"], checkpoint_path=trained_checkpoint)
    (quoted,) = classify_column(df, "`surname`", checkpoint_path=trained_checkpoint).collect()  # Spark's quoting
    assert quoted == plain
    # Spark compares the names in lower case: SOYADI is soyadi, not soyadı, so soyadı is not ambiguous
    turkish = spark.createDataFrame([("Bakov", "Smith")], ["soyadı", "SOYADI"])
    (row,) = classify_column(turkish, "soyadı", checkpoint_path=trained_checkpoint).collect()
    assert row["origin_top_k"] == plain["origin_top_k"]
    with pytest.raises(BatchInputError, match="has no column 'ID'"):  # ıd is not id to Spark either
        classify_column(spark.createDataFrame([("Bakov",)], ["ıd"]), "ID", checkpoint_path=trained_checkpoint)
    both = spark.createDataFrame([("Bakov", "Smith")], ["name", "NAME"])
    with pytest.raises(BatchInputError, match=r"column 'name' is ambiguous: .* finds \['name', 'NAME'\]"):
        classify_column(both, "name", checkpoint_path=trained_checkpoint)
    spark.conf.set("spark.sql.caseSensitive", "true")
    try:
        with pytest.raises(BatchInputError, match="has no column 'SURNAME'"):
            classify_column(df, "SURNAME", checkpoint_path=trained_checkpoint)
        (exact,) = classify_column(both, "NAME", checkpoint_path=trained_checkpoint).collect()
        (smith,) = classify_column(df, "Given", checkpoint_path=trained_checkpoint).collect()
        assert exact["origin_top_k"] == smith["origin_top_k"] != plain["origin_top_k"]  # Smith's, not Bakov's
    finally:
        spark.conf.unset("spark.sql.caseSensitive")


def test_classify_column_passes_dotted_backticked_and_duplicated_columns_through(spark, trained_checkpoint):
    """mapInArrow looked each column up by its name unescaped ("addr.city" failed, a backtick too) and
    Arrow refused a join's duplicate names, both only once the job ran."""
    when = datetime.datetime(2020, 1, 2, 3, 4, 5)
    df = spark.createDataFrame(
        [(1, "Bakov", "Oslo", "x", 2, when, [when])],
        "id int, name string, c string, d string, e int, t timestamp, ts array<timestamp>",
    )
    df = df.toDF("id", "name", "addr.city", "a`b", "id", "t", "ts")
    result = classify_column(df, "name", checkpoint_path=trained_checkpoint)
    assert (
        result.columns[:7] == ["id", "name", "addr.city", "a`b", "id", "t", "ts"] and "origin_label" in result.columns
    )
    (row,) = result.collect()
    assert tuple(row)[:7] == (1, "Bakov", "Oslo", "x", 2, when, [when]) and row["origin_label"] is not None


def test_classify_column_refuses_on_the_driver_what_failed_in_a_worker(spark, trained_checkpoint):
    df = spark.createDataFrame([("Bakov", True)], "name string, flag boolean")
    for options, message in [
        ({"top_k": True}, "top_k must be a whole number"),
        ({"top_k": 2.5}, "top_k must be a whole number"),
        ({"min_probability": True}, "min_probability must be a number"),
        ({"batch_size": 2.5}, "batch_size must be a whole number"),
        ({"device": "bogus"}, "device must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            classify_column(df, "name", checkpoint_path=trained_checkpoint, **options)
    with pytest.raises(BatchInputError, match="holds boolean, not text"):  # True was Vietnamese
        classify_column(df, "flag", checkpoint_path=trained_checkpoint)
    intervals = spark.sql("select 'Bakov' as name, interval '1' year as iv")
    with pytest.raises(
        BatchInputError, match=r"column 'iv' \(interval year\) is of a type Spark cannot hand to Python workers"
    ):
        classify_column(intervals, "name", checkpoint_path=trained_checkpoint)
    twice = spark.createDataFrame([("Bakov", "Ziski")], "name string, other string").toDF("name", "name")
    with pytest.raises(BatchInputError, match="has 'name' more than once"):
        classify_column(twice, "name", checkpoint_path=trained_checkpoint)


def test_classify_column_refuses_a_broken_model_on_the_driver(spark, tmp_path):
    """A checkpoint that loads but takes every Latin name for no name filled the column with not-a-name."""
    shuffled = rewritten(tmp_path / "shuffled.safetensors", with_shuffled_alphabet)
    df = spark.createDataFrame([("Bakov",)], ["name"])
    with pytest.raises(CanaryError, match="is not a sound model"):
        classify_column(df, "name", checkpoint_path=shuffled)


def test_a_float_nan_name_abstains_as_empty(spark, trained_checkpoint):
    df = spark.createDataFrame([(float("nan"),), (None,), (2.5,)], "n double")
    rows = classify_column(df, "n", checkpoint_path=trained_checkpoint).collect()
    assert [row["origin_reason"] for row in rows] == ["empty", "empty", "no-letters"]  # NaN was not-a-name
