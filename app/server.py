"""How `python -m app` runs uvicorn: the connection limits from Settings, and with several workers a
supervisor that hands SIGHUP to each worker and refuses new connections as soon as it stops.

uvicorn's own supervisor answers SIGHUP by replacing every worker, one at a time; here each worker
hot-reloads its model in place instead (`app.reloading`), the same thing one worker does. On SIGTERM
it keeps the listening socket open until the last worker exits, so connections that arrive while
the workers drain wait in the backlog and are reset at the end; closing the parent's copy at once
leaves the socket to the workers, which close it when they stop accepting: new connections are then
refused, and a refused connection was never accepted.
"""

from __future__ import annotations

import logging
import os
import signal

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from app.connections import LIMITS_ATTRIBUTE, ConnectionLimits, LimitedHttpToolsProtocol
from app.settings import Settings

logger = logging.getLogger(__name__)

APP_IMPORT_STRING = "app.main:app"
STARTED_CHECK_S = 1.0  # how long a worker may take to say whether it has started (uvicorn's health pipe)


def build_config(settings: Settings, host: str, port: int, workers: int) -> uvicorn.Config:
    """uvicorn's config with our protocol and every connection knob from `settings`."""
    config = uvicorn.Config(
        APP_IMPORT_STRING,
        host=host,
        port=port,
        workers=workers,
        http=LimitedHttpToolsProtocol,
        timeout_keep_alive=settings.timeout_keep_alive_s,
        timeout_graceful_shutdown=settings.timeout_graceful_shutdown_s,
        log_config=None,  # our JSON handler on the root logger formats uvicorn's lines too
        access_log=False,  # the app writes its own structured line per request
    )
    limits = ConnectionLimits(
        max_connections=settings.max_connections,
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        timeout_request_read_s=settings.timeout_request_read_s,
    )
    setattr(config, LIMITS_ATTRIBUTE, limits)  # travels with the config into each worker process
    return config


class ReloadingMultiprocess(Multiprocess):
    """uvicorn's worker supervisor, with SIGHUP passed on and the socket let go at shutdown."""

    def handle_hup(self) -> None:
        logger.info("SIGHUP: each of %d workers reloads its model", len(self.processes))
        for process in self.processes:
            if process.pid is None or process.exitcode is not None:
                continue
            # A worker still starting has no handler yet (SIGHUP would kill it), and it tries the
            # configured checkpoint itself once started (app.main): it is left to finish.
            if process.is_ready(timeout=STARTED_CHECK_S):
                os.kill(process.pid, signal.SIGHUP)
            else:
                logger.info("worker %d is still starting; it tries the current checkpoint itself", process.pid)

    def handle_term(self) -> None:
        self._release_sockets()
        super().handle_term()

    def handle_int(self) -> None:
        self._release_sockets()
        super().handle_int()

    def _release_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()


def serve(config: uvicorn.Config) -> bool:
    """Run the server (one process) or the supervisor and its workers until a stop signal; False when
    a worker failed to start and the supervisor stopped them all (uvicorn's own exits 0 then)."""
    if config.workers > 1:
        supervisor = ReloadingMultiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
        return not any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)
    uvicorn.Server(config).run()
    return True
