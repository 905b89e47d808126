"""`python -m bench.profiled_server PORT PROFILE_PATH`: the app as `python -m app` serves it, with cProfile
recording uvicorn's event-loop thread from the first HTTP request until shutdown (start-up excluded).

Batches run on the model thread, which is not in this profile, except a lone request of up to
Settings.inline_max_names names, which runs on the loop and is. `bench.profile` also times the
predictor's stages directly.
"""

from __future__ import annotations

import cProfile
import sys

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.main import app as service_app


class ProfileFromFirstRequest:
    """ASGI wrapper: profile the event-loop thread from the first request; write the profile when the
    app reports its shutdown complete (uvicorn then re-raises SIGTERM, so nothing after `run` runs)."""

    def __init__(self, app: ASGIApp, profile_path: str) -> None:
        self.app = app
        self.profile_path = profile_path
        self.profiler = cProfile.Profile()
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.started:
            self.started = True
            self.profiler.enable()
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_then_dump(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self.profiler.disable()
                self.profiler.dump_stats(self.profile_path)
            await send(message)

        await self.app(scope, receive, send_then_dump)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.profiled_server PORT PROFILE_PATH", file=sys.stderr)
        return 2
    # the same server options as `python -m app` (app/__main__.py), one worker
    uvicorn.run(
        ProfileFromFirstRequest(service_app, args[1]),
        host="127.0.0.1",
        port=int(args[0]),
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
