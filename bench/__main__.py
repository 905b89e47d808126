"""`python -m bench`: run every measurement side by side, print one table, write docs/benchmarks.md
(`--quick`: runs/bench-quick.md).

Exit status: 0 when every target is met, 1 when one is missed (the table says which), 2 when a
measurement could not be taken at all.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from bench import http, inference, peers, training
from bench.batch import measure_batch
from bench.compute import measure_compute
from bench.explain import measure_explain
from bench.full_names import measure_full_names
from bench.gru_gate import measure_gru_gate
from bench.memory import memory_snapshot
from bench.profile import profile_request_path
from bench.reference import TutorialClassifier
from bench.report import REPO_ROOT, Report, Row, display_path, page_frame, write_page
from model.checkpoint import load_checkpoint
from model.encoder import NameEncoder
from model.predictor import DEFAULT_CHECKPOINT_PATH, Predictor
from training.data import load_names_dir

logger = logging.getLogger("bench")


@dataclass(frozen=True)
class Sizes:
    """How long and how often each measurement runs."""

    repeats: int
    inference_seconds: float  # per timed run, in process
    http_seconds: float  # per wrk run
    profile_repeats: int  # calls per stage when timing the batcher and the model for the profile
    training_overrides: dict  # flags added to the recipe's own


# Five short paired runs rather than three long ones: pairs close in time see the same load.
FULL = Sizes(repeats=5, inference_seconds=0.6, http_seconds=2.0, profile_repeats=200, training_overrides={})
# --quick keeps every code path but not the numbers: one short run each, no warm-up, one training epoch.
QUICK = Sizes(repeats=1, inference_seconds=0.05, http_seconds=1.0, profile_repeats=20, training_overrides={"epochs": 1})
DOCS_PAGE = REPO_ROOT / "docs" / "benchmarks.md"
QUICK_PAGE = REPO_ROOT / "runs" / "bench-quick.md"  # runs/ is git-ignored: a smoke run leaves nothing to commit


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the bench runs, numbers mean little")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where the predictor, server and recipe run"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"markdown page to write (default {display_path(DOCS_PAGE)}; with --quick {display_path(QUICK_PAGE)})",
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT_PATH, help="checkpoint to serve and whose recipe to rerun"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=REPO_ROOT / "data" / "names", help="folder of <Label>.txt files"
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=1,
        help="torch and numpy BLAS threads in process and in the server (NAMEORIGIN_TORCH_THREADS); 0 = their defaults. "
        "1 keeps ratios stable on a shared machine: at 2 threads OpenMP spin-waits whenever another job holds a core",
    )
    parser.add_argument("--skip-http", action="store_true", help="skip measurements 2, 3 and 5 (no server, no wrk)")
    parser.add_argument(
        "--peers", action="store_true", help="add measurement 8: the same model served through LitServe, side by side"
    )
    parser.add_argument("--skip-training", action="store_true", help="skip measurement 4")
    parser.add_argument("--skip-batch", action="store_true", help="skip measurement 6 (nameorigin-enrich, Spark)")
    parser.add_argument(
        "--training-timeout",
        type=float,
        default=1200.0,
        help="seconds the recipe may run before the bench gives up on it",
    )
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = QUICK_PAGE if args.quick else DOCS_PAGE
    if args.quick and args.output.resolve() == DOCS_PAGE.resolve():
        parser.error(f"--quick numbers mean nothing: it never writes {display_path(DOCS_PAGE)}")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    try:
        page_frame(args.output)  # a page the run could not write to fails before the measurements, not after
        report = run(args)
    except (http.BenchError, RuntimeError, ValueError, OSError) as error:
        logger.error("benchmark could not be completed: %s", error)
        return 2
    print(report.text_table())
    write_page(args.output, report)
    print(f"\nwrote {args.output}")
    for row in report.failures:
        print(f"target missed: {row.measurement}: ratio {row.ratio:.2f}x, target {row.target.format()}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 1 if report.failures else 0


def run(args: argparse.Namespace) -> Report:
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    checkpoint = load_checkpoint(args.checkpoint)
    # The thread count as the server sets it (NAMEORIGIN_TORCH_THREADS): torch's and numpy's BLAS pools,
    # so the in-process rows and the HTTP rows' in-process references run as the service does.
    predictor = Predictor(checkpoint, device=args.device, num_threads=args.num_threads)
    report = Report(
        settings={
            "run at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick (smoke sizes: numbers not meaningful)" if args.quick else "full",
            "device": args.device,
            "torch threads": str(torch.get_num_threads()),
            "load average at start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
            "checkpoint": display_path(args.checkpoint),
        }
    )
    dataset = load_names_dir(args.data_dir)
    test_names = [record.name for record in dataset.split("test")]
    # Every distinct name of the data, shuffled: a 4096-name batch of them holds no repeats, which the
    # predictor would read and run once (the test split alone is smaller, so its batches would repeat).
    distinct_names = [record.name for record in dataset.records]
    random.Random(0).shuffle(distinct_names)
    reference = TutorialClassifier(NameEncoder(checkpoint.encoder_config), len(checkpoint.labels))
    report.settings["model"] = f"{checkpoint.model_id} ({checkpoint.network_config.architecture})"
    report.settings["test names"] = str(len(test_names))
    report.settings["distinct names (in-process batches)"] = str(len(distinct_names))

    report.rows += inference.measure_inference(
        predictor, reference, distinct_names, sizes.repeats, sizes.inference_seconds
    )
    report.rows.append(inference.measure_unseen_names(predictor, distinct_names, sizes.repeats))
    report.rows += measure_full_names(predictor, distinct_names, sizes.repeats, sizes.inference_seconds)
    gate_rows, report.warnings = measure_gru_gate(checkpoint, test_names, sizes.repeats, sizes.inference_seconds)
    report.rows += gate_rows
    report.rows += measure_compute(predictor, distinct_names, sizes.repeats, sizes.inference_seconds)
    # The test split, not every distinct name: its occluded variants fit the reading cache, so explained
    # and plain requests are both warm, as in every other measurement.
    report.rows += measure_explain(predictor, test_names, sizes.repeats, sizes.inference_seconds)
    if not args.skip_http:
        _measure_server(args, sizes, predictor, test_names, report)
    if args.peers:
        if args.device != "cpu":
            raise ValueError("--peers compares CPU servers only; run it without --device cuda")
        with http.temporary_work_dir() as work_dir:
            report.rows += peers.measure_peers(
                args.checkpoint, args.num_threads, test_names, sizes.repeats, sizes.http_seconds, Path(work_dir)
            )
        with http.temporary_work_dir() as work_dir:
            worker_rows, worker_note = peers.measure_workers(
                args.checkpoint, args.num_threads, test_names, sizes.repeats, sizes.http_seconds, Path(work_dir)
            )
        report.rows += worker_rows
        report.notes.append(worker_note)
        with http.temporary_work_dir() as work_dir:
            report.rows += peers.measure_large_batch_threads(
                args.checkpoint, args.num_threads, test_names, sizes.repeats, sizes.http_seconds, Path(work_dir)
            )
        report.commands.append(
            "Peers: `python -m bench.litserve_peer PORT CHECKPOINT THREADS MAX_BATCH_SIZE BATCH_TIMEOUT_S` (LitServe "
            f"{peers.litserve_version()}, max_batch_size {peers.PEER_MAX_BATCH_SIZE}, batch_timeout "
            f"{peers.PEER_BATCH_TIMEOUT_S * 1000:g} ms), loaded by the same wrk runs, interleaved"
        )
    if not args.skip_training:
        with http.temporary_work_dir() as work_dir:
            rows, notes = training.measure_training(
                checkpoint,
                dataset,
                args.data_dir,
                args.device,
                Path(work_dir),
                args.training_timeout,
                sizes.training_overrides,
            )
        report.rows += rows
        report.commands.append(notes[0])
        report.notes += notes[1:]
    if not args.skip_batch:
        with http.temporary_work_dir() as work_dir:
            report.rows += measure_batch(
                predictor,
                [record.name for record in dataset.records],
                args.checkpoint,
                args.device,
                torch.get_num_threads(),
                Path(work_dir),
                quick=args.quick,
            )
    report.rows.sort(key=lambda row: int(row.measurement.split(".", 1)[0]))  # by measurement number, stable
    report.settings["bench wall time"] = f"{time.perf_counter() - started:.0f} s"
    return report


def _measure_server(
    args: argparse.Namespace, sizes: Sizes, predictor: Predictor, test_names: list[str], report: Report
) -> None:
    """Measurements 2, 3 and 5 against one server process, then the request-path profile against another."""
    http.wrk_path()  # fail before starting anything when wrk is missing
    with (
        http.temporary_work_dir() as work_dir,
        http.Server(args.checkpoint, args.device, args.num_threads, Path(work_dir)) as server,
    ):
        report.commands.append(f"Server: `{server.display_command()}`")
        http.check_endpoints(server, test_names)
        warm = memory_snapshot(server.pid)
        warm_up = not args.quick
        single_rows, single_runs = http.measure_single_name(
            server, test_names, sizes.repeats, sizes.http_seconds, Path(work_dir), warm_up
        )
        batch_rows = http.measure_batches(
            server, predictor, test_names, sizes.repeats, sizes.http_seconds, Path(work_dir), warm_up
        )
        loaded = memory_snapshot(server.pid)
        report.commands.append(f"Load: `{http.display_wrk_command()}`")
    with http.temporary_work_dir() as work_dir:  # after the measured server has stopped: never two at once
        report.profile = profile_request_path(
            args.checkpoint,
            args.device,
            args.num_threads,
            predictor,
            test_names,
            single_runs,
            sizes.profile_repeats,
            sizes.http_seconds,
            Path(work_dir),
        )
    report.rows += single_rows + batch_rows
    report.rows += [
        Row(
            "5. server peak RSS after warm-up (MiB)",
            f"{warm.peak_rss_mib:.0f} MiB",
            f"now resident {warm.rss_mib:.0f} MiB",
        ),
        Row(
            "5. server peak RSS after the load runs (MiB)",
            f"{loaded.peak_rss_mib:.0f} MiB",
            f"after warm-up {warm.peak_rss_mib:.0f} MiB",
            ratio=loaded.peak_rss_mib / warm.peak_rss_mib,
        ),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
