"""Where the Spark job writes: never over its input, and never a half-written folder at the output.

Spark's own `mode("overwrite")` deletes the output folder before the job runs, so a job that fails
leaves nothing where the old output was, and one whose output is its input deletes the data it is
about to read. Here the job writes into a new folder beside the output, and only when it has
succeeded does that folder take the output's place (the old one, with --overwrite, is removed last).
Paths are compared as Hadoop qualifies them, so `out`, `./out` and `file:/.../out` are one folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession

from batch.errors import BatchInputError


class SparkOutput:
    """The job's output folder on whatever file system Hadoop resolves it to (local, HDFS, S3A, ...)."""

    def __init__(self, spark: SparkSession, input_path: str, output_path: str) -> None:
        jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()  # py4j: Hadoop's FileSystem API
        assert jvm is not None  # a live session has its gateway
        self._path_class = jvm.org.apache.hadoop.fs.Path
        self.output = self._qualified(output_path, conf)
        self.fs = self.output.getFileSystem(conf)
        self.input = self._qualified(input_path, conf)

    def _qualified(self, path: str, conf: Any) -> Any:
        hadoop_path = self._path_class(path)
        return hadoop_path.getFileSystem(conf).makeQualified(hadoop_path)

    def check(self, overwrite: bool) -> None:
        """Refuse an output that is, holds or lies inside the input, and an existing one without overwrite."""
        output, source = self.output.toString().rstrip("/"), self.input.toString().rstrip("/")
        if output == source or source.startswith(output + "/") or output.startswith(source + "/"):
            raise BatchInputError(f"the output {output} would overwrite the input {source}; give another --output")
        if self.fs.exists(self.output) and not overwrite:
            raise BatchInputError(f"{output} already exists; give --overwrite to replace it")

    @contextmanager
    def staged(self) -> Iterator[str]:
        """A new folder beside the output to write into; it becomes the output when the block succeeds
        and is removed when it fails, leaving any old output as it was."""
        name = self.output.getName()
        staging = self._path_class(self.output.getParent(), f".{name}.writing-{uuid.uuid4().hex}")
        try:
            yield staging.toString()
        except BaseException:
            self.fs.delete(staging, True)
            raise
        previous = self._path_class(self.output.getParent(), f".{name}.replaced-{uuid.uuid4().hex}")
        had_output = self.fs.exists(self.output)
        if had_output and not self.fs.rename(self.output, previous):
            self.fs.delete(staging, True)
            raise OSError(f"could not move the old output {self.output.toString()} aside")
        if not self.fs.rename(staging, self.output):
            if had_output:
                self.fs.rename(previous, self.output)
            self.fs.delete(staging, True)
            raise OSError(f"could not move the new output into {self.output.toString()}")
        if had_output:
            self.fs.delete(previous, True)
