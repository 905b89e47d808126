"""Command line: `python -m model.predict Hinton Schmidhuber "Nguyễn"` prints the top-3 per name."""
from __future__ import annotations

import argparse
import logging
import sys

from model.checkpoint import CheckpointError
from model.encoder import NameEncodingError
from model.predictor import DEFAULT_CHECKPOINT_PATH, DEVICES, DeviceUnavailableError, Predictor

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.predict", description=__doc__)
    parser.add_argument("names", nargs="+", help="names to classify")
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT_PATH), help="default: the shipped model")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--device", choices=DEVICES, default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        predictor = Predictor.from_path(args.checkpoint, device=args.device)
        results = predictor.predict(args.names, top_k=args.top_k)
    except (CheckpointError, NameEncodingError, DeviceUnavailableError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for result in results:
        print(f"\n> {result.name}")
        for prediction in result.predictions:
            print(f"({prediction.log_probability:.2f}) {prediction.label}  {prediction.probability:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
