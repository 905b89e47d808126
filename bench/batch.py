"""Measurement 6: `nameorigin-enrich` on generated files against the in-process predictor on the same rows,
its peak RSS on a large Parquet file, and Spark local[2] beside it (method: docs/benchmarks.md)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from bench.inference import name_batches, names_per_second
from bench.report import REPO_ROOT, Row, Stats, Target, paired_ratio
from model.predictor import Predictor

logger = logging.getLogger(__name__)

DEDUP_TARGET = Target(at_least=3)
MEMORY_LIMIT_MIB = 1024
MEMORY_TARGET = Target(below=1)  # ratio = peak RSS / 1024 MiB
PREDICTOR_BATCH = 4096
BLANK_FRACTION, JUNK_FRACTION = 0.03, 0.02
BLANKS = ("", " ", "   ")
JUNK = ("123", "N/A", "-", "??", "@@@", "0000", "x" * 80, "\U0001f600", "#N/A", ".")
PROBABILITY_TOLERANCE = 1e-6  # float32 network output moves in the 7th digit with batch composition


@dataclass(frozen=True)
class BatchSizes:
    csv_rows: int
    parquet_rows: int
    repeats: int
    predictor_seconds: float


FULL = BatchSizes(csv_rows=1_000_000, parquet_rows=10_000_000, repeats=3, predictor_seconds=3.0)
QUICK = BatchSizes(csv_rows=5_000, parquet_rows=20_000, repeats=1, predictor_seconds=0.2)


def generate_rows(names: list[str], num_rows: int, seed: int = 0) -> pa.Table:
    """id (zero-padded text) and surname: names drawn with repetition, ~3% blank and ~2% junk; vectorized."""
    if not names:
        raise ValueError("need at least one name to draw from, got none")
    rng = np.random.default_rng(seed)
    pool = pa.array(list(names) + list(BLANKS) + list(JUNK), pa.string())
    picks = rng.integers(0, len(names), num_rows)
    draw = rng.random(num_rows)
    blank, junk = draw < BLANK_FRACTION, (draw >= BLANK_FRACTION) & (draw < BLANK_FRACTION + JUNK_FRACTION)
    picks[blank] = len(names) + rng.integers(0, len(BLANKS), int(blank.sum()))
    picks[junk] = len(names) + len(BLANKS) + rng.integers(0, len(JUNK), int(junk.sum()))
    ids = pc.utf8_lpad(pc.cast(pa.array(np.arange(num_rows)), pa.string()), 9, "0")
    return pa.table({"id": ids, "surname": pool.take(pa.array(picks))})


@dataclass(frozen=True)
class CommandRun:
    seconds: float  # wall, start to exit
    peak_rss_mib: float  # the child's ru_maxrss


# Starts the command and reports its peak RSS. A child forked straight from the bench would count the
# bench's own pages: Linux keeps the pre-exec high-water mark in ru_maxrss. Forked from this small
# launcher instead, the command's peak is what is left.
LAUNCHER = """
import resource, subprocess, sys
status = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(status)
"""


def run_command(arguments: list[str], env: dict[str, str] | None = None) -> CommandRun:
    """`python -m batch ARGUMENTS` as a child of a small launcher process: wall time and the command's peak RSS."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "batch", *arguments],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    seconds = time.perf_counter() - started
    stderr = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0:
        raise RuntimeError(f"nameorigin-enrich exited {result.returncode}: {stderr[-2000:]}")
    return CommandRun(seconds, int(stderr.splitlines()[-1]) / 1024)  # ru_maxrss is in KiB on Linux


def check_answers(predictor: Predictor, input_path: Path, output_path: Path) -> tuple[int, int, int]:
    """(rows, distinct names, rows whose answer differs from Predictor.predict's for their name): labels
    equal, probabilities within PROBABILITY_TOLERANCE, blank rows abstained as "empty"."""
    text = pcsv.ConvertOptions(strings_can_be_null=False, column_types={"id": pa.string(), "surname": pa.string()})
    source = pcsv.read_csv(input_path, convert_options=text)
    output = pcsv.read_csv(
        output_path,
        convert_options=pcsv.ConvertOptions(
            column_types={
                "id": pa.string(),
                "surname": pa.string(),
                "origin_label": pa.string(),
                "origin_reason": pa.string(),
            },
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # the command writes nulls unquoted, "" quoted
        ),
    )
    if output.num_rows != source.num_rows or output.column("id") != source.column("id"):
        return source.num_rows, 0, source.num_rows
    surnames = source.column("surname").to_pylist()
    distinct = sorted({name for name in surnames if name.strip()})
    expected = {answer.name: answer for answer in predictor.predict(distinct)}
    labels = output.column("origin_label").to_pylist()
    probabilities = output.column("origin_probability").to_pylist()
    reasons = output.column("origin_reason").to_pylist()
    wrong = 0
    for name, label, probability, reason in zip(surnames, labels, probabilities, reasons, strict=True):
        answer = expected.get(name)
        if answer is None:
            wrong += reason != "empty"
        elif answer.abstained:
            wrong += label is not None or reason != answer.reason
        else:
            top = answer.predictions[0]
            wrong += (
                label != top.label or probability is None or abs(probability - top.probability) > PROBABILITY_TOLERANCE
            )
    return len(surnames), len(distinct), wrong


def measure_spark(parquet_path: Path, output_path: Path, checkpoint_path: Path, device: str) -> tuple[float, float]:
    """(seconds to start a local[2] session, seconds of classify_column + Parquet write) in this process."""
    from pyspark.sql import SparkSession

    from batch.spark import classify_column

    saved_python = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers need this venv (spark.pyspark.python alone is not read)
    started = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("bench-batch")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    session_seconds = time.perf_counter() - started
    try:
        started = time.perf_counter()
        enriched = classify_column(
            spark.read.parquet(str(parquet_path)), "surname", checkpoint_path=checkpoint_path, device=device
        )
        enriched.write.mode("overwrite").parquet(str(output_path))
        return session_seconds, time.perf_counter() - started
    finally:
        spark.stop()
        if saved_python is None:
            os.environ.pop("PYSPARK_PYTHON", None)
        else:
            os.environ["PYSPARK_PYTHON"] = saved_python


def measure_batch(
    predictor: Predictor,
    names: list[str],
    checkpoint_path: Path,
    device: str,
    num_threads: int,
    work_dir: Path,
    quick: bool,
) -> list[Row]:
    """The measurement 6 rows. `names`: what surnames are drawn from (the dataset's names)."""
    sizes = QUICK if quick else FULL
    common = [
        "--checkpoint",
        str(checkpoint_path),
        "--device",
        device,
        "--num-threads",
        str(num_threads),
        "--quiet",
        "--overwrite",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    csv_path, csv_output = work_dir / "rows.csv", work_dir / "enriched.csv"
    table = generate_rows(names, sizes.csv_rows)
    pcsv.write_csv(table, csv_path)
    rows = table.column("surname").to_pylist()
    command_runs, predictor_runs = [], []
    for _ in range(sizes.repeats):
        run = run_command([str(csv_path), "--column", "surname", "--output", str(csv_output), *common], env)
        command_runs.append(sizes.csv_rows / run.seconds)
        predictor_runs.append(
            names_per_second(predictor.predict, name_batches(rows, PREDICTOR_BATCH), sizes.predictor_seconds)
        )
    command, reference = Stats.of(command_runs), Stats.of(predictor_runs)
    checked_rows, distinct, wrong = check_answers(predictor, csv_path, csv_output)
    logger.info(
        "enrich CSV: %.0f rows/s vs predictor %.0f names/s; %d of %d rows differ",
        command.median,
        reference.median,
        wrong,
        checked_rows,
    )

    parquet_path, parquet_output = work_dir / "rows.parquet", work_dir / "enriched.parquet"
    pq.write_table(
        generate_rows(names, sizes.parquet_rows, seed=1), parquet_path, row_group_size=max(sizes.parquet_rows // 10, 1)
    )
    big = run_command([str(parquet_path), "--column", "surname", "--output", str(parquet_output), *common], env)
    command_parquet_rate = sizes.parquet_rows / big.seconds
    session_seconds, spark_seconds = measure_spark(parquet_path, work_dir / "spark-enriched", checkpoint_path, device)
    spark_rate = sizes.parquet_rows / spark_seconds
    csv_label, parquet_label = _count(sizes.csv_rows), _count(sizes.parquet_rows)
    return [
        Row(
            f"6. nameorigin-enrich, {csv_label}-row CSV (rows/s, start to exit)",
            command.format("/s"),
            f"in-process predict, no dedup {reference.format('/s')}",
            ratio=paired_ratio(command, reference),
            target=DEDUP_TARGET,
        ),
        Row(
            f"6. nameorigin-enrich answers = Predictor.predict ({csv_label} rows)",
            f"{checked_rows - wrong:,} of {checked_rows:,} rows agree",
            f"{distinct:,} distinct names",
            ratio=(checked_rows - wrong) / checked_rows if checked_rows else 0.0,
            target=Target(at_least=1),
        ),
        Row(
            f"6. nameorigin-enrich peak RSS, {parquet_label}-row Parquet (MiB)",
            f"{big.peak_rss_mib:.0f} MiB",
            f"limit {MEMORY_LIMIT_MIB} MiB; the run: {command_parquet_rate:,.0f} rows/s",
            ratio=big.peak_rss_mib / MEMORY_LIMIT_MIB,
            target=MEMORY_TARGET,
        ),
        Row(
            f"6. Spark local[2], {parquet_label}-row Parquet (rows/s)",
            f"{spark_rate:,.0f} /s (+{session_seconds:.0f} s session start)",
            f"nameorigin-enrich {command_parquet_rate:,.0f} /s",
            ratio=spark_rate / command_parquet_rate,
        ),
    ]


def _count(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 and rows % 1_000_000 == 0 else f"{rows:,}"
