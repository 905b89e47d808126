"""Evaluate a checkpoint on a split of the names data: `python -m training.evaluate CHECKPOINT`.

Prints top-1 (correct when the prediction is any of the name's labels), top-3, macro-F1,
balanced accuracy, per-label precision and recall, and the biggest confusions, of the predictor as
the service runs it: a name it abstains on counts as wrong. `--robustness` adds letter case, the
development OOD set, abstention, full names and priors (`training.robustness`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from model.checkpoint import CheckpointError
from model.encoder import NameEncodingError
from model.predictor import DEFAULT_CHECKPOINT_PATH, DEVICES, DeviceUnavailableError, Predictor
from model.priors import PRIOR_NAMES
from training.data import SPLITS, DataError, NamesDataset, load_names_dir
from training.metrics import served_metrics
from training.ood import MissingSourceError
from training.robustness import format_robustness, robustness_report

logger = logging.getLogger(__name__)


def checked_dataset(predictor: Predictor, data_dir: str) -> NamesDataset:
    """The names folder, refused when its labels differ from the checkpoint's."""
    dataset = load_names_dir(data_dir)
    if dataset.labels != predictor.labels:
        raise DataError(f"{data_dir}: labels {dataset.labels} differ from the checkpoint's {predictor.labels}")
    trained_on = predictor.checkpoint.info.get("data_fingerprint")
    if trained_on != dataset.fingerprint:
        logger.warning("data fingerprint %s differs from the checkpoint's %s", dataset.fingerprint, trained_on)
    return dataset


def evaluate(predictor: Predictor, data_dir: str, split: str, prior: str = "dataset") -> dict[str, Any]:
    """Metrics of the predictor on one split; warns when the data differs from the training data."""
    dataset = checked_dataset(predictor, data_dir)
    refit = predictor.checkpoint.info.get("training", {}).get("config", {}).get("refit", False)
    if refit and split != "test":
        logger.warning(
            "this network was refit on train + val: its %s metrics are not held out (test is; the checkpoint's "
            "val metrics come from the held-out run)",
            split,
        )
    records = dataset.split(split)
    if not records:  # numpy's warnings and "Found empty input array" said nothing of why
        raise DataError(f"the {split} split of {data_dir} has no names (the hash split puts about 10% of names there)")
    return served_metrics(predictor, records, dataset.labels, prior=prior)


def format_report(metrics: dict[str, Any], title: str) -> str:
    lines = [
        title,
        f"names        {metrics['num_names']}",
        f"top-1        {metrics['top1']:.4f}",
        f"top-3        {metrics['top3']:.4f}",
        f"macro-F1     {metrics['macro_f1']:.4f}",
        f"balanced acc {metrics['balanced_accuracy']:.4f}",
        f"calib. error {metrics['expected_calibration_error']:.4f}  (ECE of the top-1 probability, answered names)",
        f"abstained    {metrics['abstained']:.4f}  (counted as wrong above)",
        "",
        f"{'label':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}",
    ]
    for label, values in metrics["per_label"].items():
        lines.append(
            f"{label:<12} {values['precision']:>9.3f} {values['recall']:>7.3f} {values['f1']:>6.3f} {values['support']:>7d}"
        )
    lines += ["", "biggest confusions (true -> predicted: count)"]
    lines += [f"  {c['true']} -> {c['predicted']}: {c['count']}" for c in metrics["confusions"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", nargs="?", help="default: the shipped model")
    parser.add_argument(
        "--checkpoint", dest="checkpoint_option", metavar="CHECKPOINT", help="the same, as the other commands take it"
    )
    parser.add_argument("--data-dir", default="data/names")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument(
        "--prior", choices=PRIOR_NAMES, default="dataset", help="the label prior answers are given under"
    )
    parser.add_argument("--robustness", action="store_true", help="case, OOD set, abstention, full names, priors")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    if args.checkpoint and args.checkpoint_option and args.checkpoint != args.checkpoint_option:
        parser.error(f"two checkpoints given: {args.checkpoint} and --checkpoint {args.checkpoint_option}")
    checkpoint = args.checkpoint or args.checkpoint_option or str(DEFAULT_CHECKPOINT_PATH)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        predictor = Predictor.from_path(checkpoint, device=args.device)
        if args.robustness:
            report = robustness_report(predictor, checked_dataset(predictor, args.data_dir))
            print(json.dumps(report, indent=2) if args.json else format_robustness(report))
            return 0
        metrics = evaluate(predictor, args.data_dir, args.split, args.prior)
    except (
        CheckpointError,
        DataError,
        DeviceUnavailableError,
        NameEncodingError,
        MissingSourceError,
        OSError,
        ValueError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        title = f"{predictor.checkpoint.model_id} on the {args.split} split of {args.data_dir}, prior {args.prior}"
        print(format_report(metrics, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
