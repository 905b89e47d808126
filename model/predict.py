"""Command line: `python -m model.predict Hinton "Nguyễn" "Kim Min-jun"` prints the top-3 per name.

`-` reads names from standard input, one per line. A name the model cannot answer is printed with
its abstention reason; the exit status is still 0 (2 only for a bad argument or checkpoint).
`--explain` adds, per answered name, how much each character raised or lowered its top label's
probability (in points: hundredths of probability), by exact occlusion (model.explain).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from model.canary import load_checked
from model.checkpoint import CheckpointError
from model.predictor import (
    DEFAULT_CHECKPOINT_PATH,
    DEFAULT_TOP_K,
    DEVICES,
    DeviceUnavailableError,
    NamePrediction,
)
from model.priors import PriorError, parse_prior


def prior_argument(text: str) -> str | dict[str, float]:
    """--prior: dataset, uniform, or a JSON {label: weight} object (model.priors.parse_prior)."""
    try:
        return parse_prior(text)
    except PriorError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def shown(text: str) -> str:
    """`text` for a terminal: each character that does not print (a control character, ESC, a
    direction mark) escaped as Python writes it, so a name cannot retitle or recolour the terminal."""
    return text if text.isprintable() else "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def format_prediction(result: NamePrediction) -> str:
    name = shown(result.name)
    lines = [f"\n> {name}" + (f"  (read as {result.read_as!r}, {result.script})" if result.read_as else "")]
    if result.abstained:
        lines.append(f"abstained: {result.reason}")
    for prediction in result.predictions:
        lines.append(f"({prediction.log_probability:.2f}) {prediction.label}  {prediction.probability:.1%}")
    for token in result.tokens:
        best = (
            f"{token.predictions[0].label} {token.predictions[0].probability:.1%}"
            if token.predictions
            else token.reason
        )
        lines.append(f"  part {token.text!r}: {best}")
    if result.explanation is not None and result.predictions:
        scored = [
            f"{fragment} {score * 100:+.1f}"
            for fragment, score in zip(result.explanation.fragments, result.explanation.scores[0], strict=True)
            if not fragment.isspace()
        ]
        lines.append(f"why {result.predictions[0].label} (points per character): " + ", ".join(scored))
        if result.explanation.words:
            words = zip(result.explanation.words, result.explanation.word_scores[0], strict=True)
            lines.append("  per word: " + ", ".join(f"{word} {score * 100:+.1f}" for word, score in words))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.predict", description=__doc__)
    parser.add_argument("names", nargs="+", help="names to classify; - reads them from standard input, one per line")
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT_PATH), help="default: the shipped model")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
    parser.add_argument(
        "--prior", type=prior_argument, default="dataset", help="dataset, uniform, or a JSON {label: weight}"
    )
    parser.add_argument("--min-probability", type=float, default=0.0, help="abstain below this top probability")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument(
        "--explain", action="store_true", help="also show how much each character raised or lowered the top label"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if sys.stdout is None:  # started with standard output closed (>&-): every answer would vanish, exit 0
        print("error: standard output is closed; nothing could be printed", file=sys.stderr)
        return 2
    try:
        names = input_names(args.names)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        predictor = load_checked(args.checkpoint, device=args.device)
        results = predictor.predict(
            names, top_k=args.top_k, prior=args.prior, min_probability=args.min_probability, explain=args.explain
        )
    except (CheckpointError, DeviceUnavailableError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        for result in results:
            print(format_prediction(result), flush=True)
    except BrokenPipeError:  # `| head`: whoever read standard output stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's last flush finds no pipe
        print("error: standard output was closed by its reader; the output stops part-way", file=sys.stderr)
        return 1
    return 0


def input_names(arguments: list[str]) -> list[str]:
    """The names to classify: the arguments, or with `-` standard input's lines (UTF-8, a byte order mark
    dropped). Bytes that are not UTF-8 are refused with where they are: decoded as the locale decodes
    them they became lone surrogates, which the reading drops ("M\\xfcller" was read "mller", German)
    or, in a strict locale, a traceback."""
    if arguments == ["-"]:
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line_number = data[: error.start].count(b"\n") + 1
            raise ValueError(f"standard input: line {line_number} is not valid UTF-8 ({error.reason})") from None
        return [line.rstrip("\r") for line in text.split("\n")[: -1 if text.endswith("\n") else None]]
    if "-" in arguments:  # "Smith -" answered "-" as a name and never read standard input
        raise ValueError("- reads the names from standard input; give it alone, without names beside it")
    for position, name in enumerate(arguments, start=1):
        if any("\ud800" <= char <= "\udfff" for char in name):
            raise ValueError(f"argument {position} is not valid UTF-8: {name.encode('utf-8', 'surrogateescape')!r}")
    return arguments


if __name__ == "__main__":
    raise SystemExit(main())
