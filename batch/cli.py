"""`nameorigin-enrich INPUT --column NAME --output OUTPUT` (also `python -m batch`): adds the origin of
each row's name to a CSV, TSV, Parquet or JSON Lines file.

Exit status: 0 done; 2 a bad file, column or option (one line on stderr, nothing left under the output's
name); 1 the output could not be written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import codecs
import logging
import os
import signal
import sys

import pyarrow as pa

from batch.cache import DEFAULT_CACHE_NAMES
from batch.classify import DEFAULT_BATCH_SIZE, ClassifyOptions
from batch.enrich import DEFAULT_CHUNK_ROWS, EnrichJob, enrich
from batch.errors import BatchInputError
from batch.formats import FORMATS, detect_format
from batch.interrupts import raise_interrupt
from model import priors
from model.canary import load_checked
from model.checkpoint import CheckpointError
from model.predictor import DEFAULT_CHECKPOINT_PATH, DEFAULT_TOP_K, DEVICES, DeviceUnavailableError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nameorigin-enrich", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "input", metavar="INPUT", help="file to enrich (.csv .tsv .parquet .jsonl), or - for standard input (CSV)"
    )
    parser.add_argument(
        "--column",
        action="append",
        required=True,
        metavar="NAME",
        help="the column holding full names; give it twice (given name, then surname) to join two columns",
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="OUTPUT",
        help="file to write, or - for standard output (in the input's format unless --output-format; not Parquet)",
    )
    parser.add_argument("--format", choices=FORMATS, help="INPUT's format (default: from its extension)")
    parser.add_argument(
        "--output-format", choices=FORMATS, help="OUTPUT's format (default: from its extension, else INPUT's)"
    )
    parser.add_argument(
        "--encoding", default="utf-8", help="text encoding of a CSV/TSV/JSON Lines input (default utf-8)"
    )
    parser.add_argument(
        "--top-k", type=int, default=DEFAULT_TOP_K, help=f"labels kept in origin_top_k (default {DEFAULT_TOP_K})"
    )
    parser.add_argument("--all-labels", action="store_true", help="add one p_<label> column per label")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="add origin_explanation: JSON, how much each character raised (+) or lowered (-) origin_label's probability",
    )
    parser.add_argument(
        "--prior",
        default="dataset",
        help="label prior: dataset, uniform, or a JSON object of label weights, e.g. '{\"English\": 2}' (default dataset)",
    )
    parser.add_argument(
        "--min-probability", type=float, default=0.0, help="abstain (low-confidence) below this top probability"
    )
    parser.add_argument(
        "--checkpoint", default=str(DEFAULT_CHECKPOINT_PATH), help="model to use (default: the shipped one)"
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto = CUDA when present, else CPU")
    parser.add_argument(
        "--num-threads",
        type=int,
        default=1,
        help="torch and numpy BLAS threads (default 1, as the service: two spin-wait whenever another job holds a core); 0 = their defaults",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"names per model call (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows read, deduplicated and written together; bounds memory (default {DEFAULT_CHUNK_ROWS})",
    )
    parser.add_argument(
        "--cache-names",
        type=int,
        default=DEFAULT_CACHE_NAMES,
        help=f"distinct names whose answers are kept across chunks (default {DEFAULT_CACHE_NAMES:,}); "
        "0 classifies each chunk on its own",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep finished chunks in OUTPUT.partial/ and continue an interrupted run"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    return parser


def parse_prior(text: str) -> str | dict[str, float]:
    """--prior as the predictor takes it (model.priors.parse_prior), a bad one a BatchInputError."""
    try:
        return priors.parse_prior(text)
    except priors.PriorError as error:
        raise BatchInputError(f"--prior: {error}") from error


def job_from_args(args: argparse.Namespace) -> EnrichJob:
    try:
        codecs.lookup(args.encoding)
    except LookupError as error:
        raise BatchInputError(f"unknown --encoding {args.encoding!r}") from error
    if args.chunk_rows < 1:
        raise BatchInputError(f"--chunk-rows must be at least 1, got {args.chunk_rows}")
    if args.cache_names < 0:
        raise BatchInputError(f"--cache-names must be at least 0, got {args.cache_names}")
    input_format = detect_format(args.input, args.format)
    return EnrichJob(
        input_path=args.input,
        output_path=args.output,
        columns=tuple(args.column),
        input_format=input_format,
        output_format=detect_format(args.output, args.output_format, default=input_format),
        encoding=args.encoding,
        chunk_rows=args.chunk_rows,
        cache_names=args.cache_names,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # The C allocator rather than pyarrow's default mimalloc, which keeps freed chunks resident: the
    # peak RSS of a 10M-row Parquet run is lower with it (docs/batch.md).
    pa.set_memory_pool(pa.system_memory_pool())
    for stop in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # unwinds, so the temporary output is deleted
        signal.signal(stop, raise_interrupt)
    try:
        job = job_from_args(args)
        options = ClassifyOptions(
            top_k=args.top_k,
            all_labels=args.all_labels,
            prior=parse_prior(args.prior),
            min_probability=args.min_probability,
            batch_size=args.batch_size,
            explain=args.explain,
        )
        predictor = load_checked(args.checkpoint, device=args.device, num_threads=args.num_threads)
        summary = enrich(job, predictor, options)
    except (BatchInputError, CheckpointError, DeviceUnavailableError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`: whoever read standard output stopped reading
        # Point standard output at nothing, so that the interpreter's last flush finds no pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("error: standard output was closed by its reader; the output stops part-way", file=sys.stderr)
        return 1
    except OSError as error:  # the disk, not the input: a full disk, a lost mount
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.output == "-":  # the rows already written are out: nothing to take back
            print("interrupted: what was written to standard output stops part-way", file=sys.stderr)
        else:
            resumable = " (--resume continues it)" if args.resume else ""
            print(f"interrupted: nothing was written to {args.output}{resumable}", file=sys.stderr)
        return 130
    if not args.quiet:
        for line in summary.lines(job.cache_names):
            print(line, file=sys.stderr)
        if args.output != "-":
            print(f"wrote {args.output} (model {predictor.checkpoint.model_id})", file=sys.stderr)
    return 0
