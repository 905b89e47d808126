"""`python -m batch.spark --input PARQUET --output PARQUET --column NAME`: enrichment as a Spark job.

Under spark-submit, pass this file (`spark-submit ... batch/spark/__main__.py --input ...`); the
master, executors and shipped files come from spark-submit. Run with plain python it starts a local
Spark (local[*], or --master). Exit status 2 for a bad column or option.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import SparkSession

from batch.classify import DEFAULT_BATCH_SIZE
from batch.cli import parse_prior
from batch.enrich import DEFAULT_CHUNK_ROWS
from batch.errors import BatchInputError
from batch.spark import classify_column
from batch.spark.output import SparkOutput
from model.checkpoint import CheckpointError
from model.predictor import DEFAULT_CHECKPOINT_PATH, DEFAULT_TOP_K, DEVICES, DeviceUnavailableError, resolve_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch.spark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--input", required=True, help="Parquet file or folder (any path Spark reads: hdfs://, s3a://, ...)"
    )
    parser.add_argument("--output", required=True, help="Parquet folder to write")
    parser.add_argument(
        "--column", action="append", required=True, help="the full-name column; twice for given name, surname"
    )
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
    parser.add_argument("--all-labels", action="store_true", help="add one p_<label> column per label")
    parser.add_argument("--prior", default="dataset", help="dataset, uniform, or a JSON object of label weights")
    parser.add_argument("--min-probability", type=float, default=0.0)
    parser.add_argument(
        "--checkpoint",
        default=str(DEFAULT_CHECKPOINT_PATH),
        help="a path every node can read, or the file name of a checkpoint shipped with spark-submit --files",
    )
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="device on the executors")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per deduplicated chunk in a worker"
    )
    parser.add_argument("--master", help="Spark master when not run by spark-submit (default local[*])")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    had_session = SparkSession.getActiveSession() is not None
    builder = SparkSession.builder.appName("nameorigin-enrich")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    try:
        output = SparkOutput(spark, args.input, args.output)
        output.check(args.overwrite)
        if (spark.sparkContext.master or "").startswith("local"):  # the executors are this machine: check now
            resolve_device(args.device)
        enriched = classify_column(
            spark.read.parquet(args.input),
            args.column,
            args.top_k,
            all_labels=args.all_labels,
            prior=parse_prior(args.prior),
            min_probability=args.min_probability,
            checkpoint_path=args.checkpoint,
            device=args.device,
            batch_size=args.batch_size,
            chunk_rows=args.chunk_rows,
        )
        with output.staged() as staging:
            enriched.write.mode("errorifexists").parquet(staging)
    except (
        BatchInputError,
        CheckpointError,
        AnalysisException,
        FileNotFoundError,
        ValueError,
        DeviceUnavailableError,
    ) as error:
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    except (PySparkException, Py4JJavaError, OSError) as error:  # the job failed on an executor
        print(f"error: the Spark job failed, the output is as it was: {_last_error_line(error)}", file=sys.stderr)
        return 1
    finally:
        if not had_session:
            spark.stop()
    print(f"wrote {args.output} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _last_error_line(error: BaseException) -> str:
    """The line of a Spark failure that names the Python or Java exception (the rest is stack traces)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (named or lines or [type(error).__name__])[-1][:300]


if __name__ == "__main__":
    raise SystemExit(main())
