"""nameorigin-enrich --resume: a run killed at any point, resumed, writes exactly what an uninterrupted run writes.

The kills are real: a child process is SIGKILLed halfway through writing a chunk, between finishing a
chunk and recording it, and at a moment chosen by the clock, not an exception raised in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import torch

from batch.cli import main
from tests.batch_fixtures import name_column
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(300)  # a hung JVM or child fails the test instead of stalling CI

ROWS, CHUNK_ROWS = 3000, 400  # 8 chunks

# Runs the command in a child that SIGKILLs itself at one point of chunk KILL_AT: "mid-write" (half a
# part file written), "before-record" (chunk finished and renamed, the progress record not yet updated).
KILLING_DRIVER = """
import os, signal, sys
import batch.enrich
import batch.resume
from batch.cli import main

point, kill_at = sys.argv[1], int(sys.argv[2])
write_part, commit = batch.enrich.write_part, batch.resume.PartsDir.commit

def write_half_then_die(file_format, path, schema, table):
    if path.name.startswith(".part-%05d." % kill_at):
        write_part(file_format, path, schema, table.slice(0, table.num_rows // 2))
        os.kill(os.getpid(), signal.SIGKILL)
    write_part(file_format, path, schema, table)

def die_before_record(self, progress):
    if progress.completed_chunks == kill_at + 1:
        os.kill(os.getpid(), signal.SIGKILL)
    commit(self, progress)

if point == "mid-write":
    batch.enrich.write_part = write_half_then_die
else:
    batch.resume.PartsDir.commit = die_before_record
sys.exit(main(sys.argv[3:]))
"""


def write_input(folder: Path, file_format: str, rows: int = ROWS) -> Path:
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array(name_column(rows, seed=7, distinct=300), pa.string()),
        }
    )
    path = folder / f"in.{file_format}"
    if file_format == "parquet":
        pq.write_table(table, path, row_group_size=1000)
    else:
        pcsv.write_csv(table, path)
    return path


def arguments(source: Path, output: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [
        str(source),
        "--column",
        "name",
        "--output",
        str(output),
        "--chunk-rows",
        str(CHUNK_ROWS),
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def progress_of(output: Path) -> dict:
    return json.loads((output.with_name(output.name + ".partial") / "progress.json").read_text())


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
@pytest.mark.parametrize("point", ["mid-write", "before-record"])
def test_resume_after_a_kill_writes_the_uninterrupted_output(tmp_path, trained_checkpoint, file_format, point):
    source = write_input(tmp_path, file_format)
    reference, output = tmp_path / f"reference.{file_format}", tmp_path / f"out.{file_format}"
    assert main(arguments(source, reference, trained_checkpoint)) == 0
    killed = subprocess.run(
        [sys.executable, "-c", KILLING_DRIVER, point, "3", *arguments(source, output, trained_checkpoint, "--resume")],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert not output.exists()
    assert progress_of(output)["completed_chunks"] == 3
    assert main(arguments(source, output, trained_checkpoint, "--resume")) == 0
    assert output.read_bytes() == reference.read_bytes()
    assert not output.with_name(output.name + ".partial").exists()


def test_resume_after_a_kill_at_a_random_moment_writes_the_uninterrupted_output(tmp_path, trained_checkpoint):
    source = write_input(tmp_path, "parquet", rows=40_000)
    reference, output = tmp_path / "reference.parquet", tmp_path / "out.parquet"
    assert main(arguments(source, reference, trained_checkpoint)) == 0
    child = subprocess.Popen(
        [sys.executable, "-m", "batch", *arguments(source, output, trained_checkpoint, "--resume")],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record = output.with_name(output.name + ".partial") / "progress.json"
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if record.exists() and progress_of(output)["completed_chunks"] >= 20:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    assert child.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    done = progress_of(output)["completed_chunks"]
    assert 20 <= done < 100
    assert main(arguments(source, output, trained_checkpoint, "--resume")) == 0
    assert output.read_bytes() == reference.read_bytes()


def test_resume_refuses_other_options_than_the_interrupted_run(tmp_path, trained_checkpoint, capsys):
    source = write_input(tmp_path, "parquet")
    output = tmp_path / "out.parquet"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLING_DRIVER,
            "before-record",
            "1",
            *arguments(source, output, trained_checkpoint, "--resume"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL
    capsys.readouterr()
    assert main(arguments(source, output, trained_checkpoint, "--resume", "--top-k", "2")) == 2
    assert "cannot resume: options changed since the interrupted run (top_k: 3 then, 2 now)" in capsys.readouterr().err
    # torch's threads move probabilities in the last digits, so they are part of what was written
    assert main(arguments(source, output, trained_checkpoint, "--resume", "--num-threads", "2")) == 2
    assert "(torch_threads: 1 then, 2 now)" in capsys.readouterr().err
    torch.set_num_threads(1)  # the refused run set the process's threads before its check
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert main(arguments(source, output, trained_checkpoint, "--resume")) == 2
    assert "cannot resume: input changed since the interrupted run (mtime_ns:" in capsys.readouterr().err
    assert main(arguments(source, output, trained_checkpoint)) == 2
    assert "rerun with --resume to continue it" in capsys.readouterr().err
    assert not output.exists()


def test_resume_without_an_earlier_run_writes_the_plain_runs_output(tmp_path, trained_checkpoint):
    source = write_input(tmp_path, "csv")
    reference, output = tmp_path / "reference.csv", tmp_path / "out.csv"
    assert main(arguments(source, reference, trained_checkpoint)) == 0
    assert main(arguments(source, output, trained_checkpoint, "--resume")) == 0
    assert output.read_bytes() == reference.read_bytes()


def test_enrich_stopped_by_sigterm_leaves_no_output_or_temporary_file(tmp_path, trained_checkpoint):
    source = write_input(tmp_path, "csv", rows=40_000)
    output = tmp_path / "out.csv"
    child = subprocess.Popen(
        [sys.executable, "-m", "batch", *arguments(source, output, trained_checkpoint)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline and not list(tmp_path.glob(".out.csv.*.tmp")):
        time.sleep(0.005)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 130, "the run ended before it could be stopped"
    assert b"interrupted: nothing was written to" in child.stderr.read()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]
