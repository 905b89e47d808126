"""The service's one settings object: every knob, its default, read from NAMEORIGIN_* env vars.

This is the only code in the project that reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.assets import DEFAULT_CHECKPOINT_PATH
from model.predictor import usable_cores
from model.reading import MAX_NAME_CHARACTERS

# The most threads the automatic rule gives a large call: the only count measured (a 2-core machine).
MEASURED_LARGE_BATCH_THREADS = 2
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Server, limits and batching knobs; `Settings()` reads them, tests pass their own values."""

    model_config = SettingsConfigDict(env_prefix="NAMEORIGIN_", extra="forbid", populate_by_name=True)

    # The env var is NAMEORIGIN_CHECKPOINT (what deploy files and the benchmark set); the field
    # says what it holds.
    checkpoint_path: Path = Field(
        DEFAULT_CHECKPOINT_PATH,
        validation_alias=AliasChoices("NAMEORIGIN_CHECKPOINT"),
        description="checkpoint file to serve (default: the shipped model)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = CUDA when present, else CPU; cuda without CUDA refuses to start"
    )
    # prometheus_client's own variable: the folder several workers share their metrics in. `python -m
    # app` sets it for workers > 1; the library reads it too, so it keeps its name.
    metrics_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR"),
        description="folder several workers write their metrics to, so any scrape sums them (None: one process)",
    )
    # Set by `python -m app` for its workers only (app.accepted): where the model they accepted last is kept.
    accepted_checkpoint_copy: Path | None = Field(
        None,
        description="set by `python -m app` for several workers: the copy of the model they accepted last, which a restarted worker serves (not for users to set)",
    )
    host: str = Field("127.0.0.1", description="interface `python -m app` binds")
    port: int = Field(8000, ge=0, le=65535, description="port `python -m app` binds")
    workers: int = Field(1, ge=1, description="uvicorn worker processes for `python -m app`")
    log_level: LogLevel = Field("INFO", description="DEBUG also logs the names in each request")
    torch_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="torch intra-op threads for the model, and numpy BLAS threads with them; 0 = their defaults (one per core)",
    )
    large_batch_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="torch intra-op threads for a model call of 512 distinct readings or more on the CPU (a full name's parts count one each); 0 = the cores this process may run on over the workers, at most 2 (the count measured), never fewer than torch_threads, and 0 when torch_threads is 0",
    )
    max_names_per_request: int = Field(1000, ge=1, description="most names one request may carry")
    max_name_length: int = Field(
        64,
        ge=1,
        le=MAX_NAME_CHARACTERS,  # longer, a name abstains too-long in the reader anyway
        description="most characters in one name, as read (NFKC, spaces trimmed), before transliteration",
    )
    max_body_bytes: int = Field(1_048_576, ge=1, description="largest request body accepted (413 above)")
    max_batch_size: int = Field(
        512, ge=1, description="names the batcher gathers into one model call before it stops waiting"
    )
    max_batch_wait_ms: float = Field(
        1.0,
        ge=0,
        description="how long the batcher waits for more requests to join a batch (only after a batch that had company)",
    )
    inline_max_names: int = Field(
        256,
        ge=0,
        description="a lone request (no other waiting for the model) of at most this many names (8 characters a name on average, no explanations) runs on the event loop, without the hand-off to the model thread; every other batch runs on the thread so the loop keeps answering (0: always the thread)",
    )
    queue_size: int = Field(1024, ge=1, description="requests waiting for the model before 503s")
    queue_wait_ms: float = Field(
        250.0,
        ge=0,
        description="how long a request that finds the queue full waits for a place before its 503 (0: refused at once)",
    )
    timeout_keep_alive_s: int = Field(5, ge=1, description="an idle keep-alive connection is closed after this long")
    timeout_request_read_s: float = Field(
        10.0,
        gt=0,
        description="a connection must send a whole request (head and body) this soon after opening or after its last answer (408, closed)",
    )
    max_connections: int = Field(
        2048,
        ge=1,
        description="open connections per worker; past it the longest-idle one is closed, or the newcomer refused with 503",
    )
    max_header_bytes: int = Field(16_384, ge=256, description="largest request line plus headers (431 above)")
    max_header_count: int = Field(100, ge=1, description="most header fields in one request (431 above)")
    timeout_graceful_shutdown_s: int = Field(
        30, ge=1, description="on SIGTERM, how long requests in flight may take before they are cancelled"
    )
    reload_poll_s: float = Field(
        2.0, ge=0, description="how often each worker checks the checkpoint file for a change to hot-reload; 0 = never"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def threads_for_large_batches(self) -> int:
        """large_batch_threads, or with 0 the cores this process may run on shared among the workers, at
        most MEASURED_LARGE_BATCH_THREADS and never fewer than torch_threads (docs/benchmarks.md,
        "Large batches on more cores"); 0 when torch_threads is 0 (torch's default, a thread per core,
        already)."""
        if self.large_batch_threads:
            return self.large_batch_threads
        if not self.torch_threads:
            return 0
        return max(self.torch_threads, min(MEASURED_LARGE_BATCH_THREADS, usable_cores() // self.workers))
