"""`python -m bench.litserve_peer PORT CHECKPOINT THREADS MAX_BATCH_SIZE BATCH_TIMEOUT_S`: the shipped model served through LitServe, the
closest peer (FastAPI/uvicorn with server-side batching), for `bench.peers` to measure beside nameorigin.

Same request and answer JSON as `POST /classify`: the body is validated by the same `ClassifyRequest`,
the same `Predictor.rank_requests` answers a batch, and the answer is laid out by the same function as
the service's, so the two stacks differ only in what serves the model. `POST /ping` is the service's own
constant endpoint (the same function: it reads the body and answers a constant) added to LitServe's
app, so the two differ only in the stack around it. LitServe is a dev-only dependency.
"""

# No `from __future__ import annotations`: LitServe reads decode_request's annotation as a live class
# to build its route (a string would not be a body model).
import sys
from typing import Any

import litserve

from app.routes import _name_results as name_results  # the service's own answer layout, so answers are equal
from app.routes import ping  # the service's own constant endpoint
from app.schemas import ClassifyRequest
from model.predictor import Predictor, RankedNames, RankQuery

Decoded = tuple[list[str], RankQuery, bool]  # names, how to answer, whether the request sent one `name`


class NameOriginAPI(litserve.LitAPI):
    """One request = one ClassifyRequest; a batch of requests = one `rank_requests` call."""

    def __init__(self, checkpoint_path: str, num_threads: int, max_batch_size: int, batch_timeout_s: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout_s, api_path="/classify")
        self.checkpoint_path = checkpoint_path
        self.num_threads = num_threads

    def setup(self, device: str) -> None:
        # The predictor holds torch's threads and numpy's BLAS pool to the count, as the service's does.
        self.predictor = Predictor.from_path(self.checkpoint_path, device="cpu", num_threads=self.num_threads)

    def decode_request(self, request: ClassifyRequest, **kwargs: Any) -> Decoded:
        body = request  # validated by FastAPI against the service's own request model
        return body.name_batch, RankQuery(body.top_k, body.prior, body.min_probability), body.name is not None

    def batch(self, inputs: list[Decoded]) -> list[Decoded]:
        return inputs  # requests of different sizes: the predictor takes the list as it is

    def predict(self, x: list[Decoded], **kwargs: Any) -> list[tuple[Decoded, RankedNames]]:
        answers = self.predictor.rank_requests([(names, query) for names, query, _ in x])
        return list(zip(x, answers, strict=True))

    def unbatch(self, output: list[tuple[Decoded, RankedNames]]) -> list[tuple[Decoded, RankedNames]]:
        return output

    def encode_response(self, output: tuple[Decoded, RankedNames], **kwargs: Any) -> dict[str, Any]:
        (names, _, single), ranked = output
        results = name_results(names, ranked, self.predictor.labels)
        model_id = self.predictor.model_id
        return {**results[0], "model_id": model_id} if single else {"results": results, "model_id": model_id}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 5:
        print(
            "usage: python -m bench.litserve_peer PORT CHECKPOINT THREADS MAX_BATCH_SIZE BATCH_TIMEOUT_S",
            file=sys.stderr,
        )
        return 2
    api = NameOriginAPI(args[1], int(args[2]), int(args[3]), float(args[4]))
    server = litserve.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=30)
    server.app.add_api_route("/ping", ping, methods=["POST"])
    server.run(
        host="127.0.0.1", port=int(args[0]), num_api_servers=1, generate_client_file=False
    )  # its default log level: an access line per request, as ours logs one
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
