"""How the served model holds up on the names people really send: `python -m training.evaluate --robustness`.

Measured with the predictor as the service runs it (reading, evidence, abstention counted as a
wrong answer): letter case, the development OOD set in native script and romanized, Chinese and
Japanese names in Han characters, abstention on test names and on random letter strings, full names
(and titles and initials added to them), the other-gender forms of the test surnames, and the uniform
prior.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from model.predictor import NamePrediction, Predictor
from model.reading import chinese_full_name_parts
from training.augment import derive_gender_forms, training_splits
from training.data import NameRecord, NamesDataset
from training.metrics import served_metrics
from training.ood import full_names, han_names, ood_surnames, random_strings

OOD_VARIANTS = ("native", "romanized", "unidecoded")  # OodName's fields: the same names written three ways
HEADLINE = ("num_names", "top1", "macro_f1", "balanced_accuracy", "expected_calibration_error", "abstained")


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics[key] for key in HEADLINE}


def case_report(predictor: Predictor, test: list[NameRecord], labels: tuple[str, ...]) -> dict[str, Any]:
    """Top-1 of the test names as written, in upper case and in lower case."""
    report = {}
    for case, change in (("as written", str), ("upper", str.upper), ("lower", str.lower)):
        records = [NameRecord(change(record.name), record.labels) for record in test]
        report[case] = _headline(served_metrics(predictor, records, labels))
    return report


def ood_records(dataset: NamesDataset, exclude_derived: bool = False) -> dict[str, list[NameRecord]]:
    """The OOD surnames as records, {"native": ..., "romanized": ..., "unidecoded": ...}; with `exclude_derived`, also
    without any form the trainer derives from the data's names."""
    excluded = [form.record.name for form in derive_gender_forms(list(dataset.records))] if exclude_derived else []
    names = [name for name in ood_surnames(list(dataset.records), excluded) if name.label in dataset.labels]
    return {
        script: [NameRecord(getattr(name, script), frozenset({name.label})) for name in names]
        for script in OOD_VARIANTS
    }


def ood_report(predictor: Predictor, dataset: NamesDataset) -> dict[str, Any]:
    """The OOD set native and romanized, under the data's prior and the uniform one (the set's label
    mix is mimesis's list sizes, 28% Dutch, nothing like the training data's), and again without
    the forms training derives from data names."""
    report = {}
    for variant, exclude_derived in (("new", False), ("new, no derived forms", True)):
        for script, records in ood_records(dataset, exclude_derived).items():
            for prior in ("dataset", "uniform") if not exclude_derived else ("uniform",):
                metrics = served_metrics(predictor, records, dataset.labels, prior=prior)
                report[f"{variant}, {script}, {prior} prior"] = {
                    **_headline(metrics),
                    "per_label_top1": {
                        label: values["recall"] for label, values in metrics["per_label"].items() if values["support"]
                    },
                    **({"abstained_by_reason": metrics["abstained_by_reason"]} if prior == "uniform" else {}),
                }
    return report


def han_report(predictor: Predictor, labels: tuple[str, ...]) -> dict[str, Any]:
    """Chinese and Japanese names in Han characters, surnames and full names (unspaced and spaced), under
    the data's prior and the uniform one: all of them, and those the Chinese full-name reading splits
    (`chinese_full_name_parts`)."""
    report = {}
    for name, records in han_names().items():
        records = [record for record in records if record.labels <= set(labels)]  # a model without Chinese: none
        split = [record for record in records if chinese_full_name_parts(record.name) is not None]
        for subset, chosen in ((name, records), (f"{name}, split", split)):
            for prior in ("dataset", "uniform"):
                if chosen:
                    metrics = served_metrics(predictor, chosen, labels, prior=prior)
                    report[f"{subset}, {prior} prior"] = _headline(metrics)
    return report


def abstention_report(predictor: Predictor, test: list[NameRecord]) -> dict[str, Any]:
    strings = random_strings()
    _, reasons = predictor.log_probabilities(strings)
    _, test_reasons = predictor.log_probabilities([record.name for record in test])
    return {
        "test names abstained": sum(reason is not None for reason in test_reasons) / len(test),
        "test names abstained by reason": dict(Counter(reason for reason in test_reasons if reason)),
        "random strings": len(strings),
        "random strings abstained as not-a-name": sum(reason == "not-a-name" for reason in reasons) / len(strings),
        "random strings abstained (any reason)": sum(reason is not None for reason in reasons) / len(strings),
    }


def full_name_report(predictor: Predictor, test: list[NameRecord], labels: tuple[str, ...]) -> dict[str, Any]:
    """Combined top-1 of full names in both orders against the surname alone; title and initial invariance."""
    built = full_names(test)
    report: dict[str, Any] = {"full names": len(built)}
    forms = {
        "surname alone": [name.surname for name in built],
        "Given Surname": [name.given_first for name in built],
        "Surname, Given": [name.surname_first for name in built],
    }
    for form, texts in forms.items():
        records = [NameRecord(text, name.labels) for text, name in zip(texts, built, strict=True)]
        report[form] = _headline(served_metrics(predictor, records, labels))
    answers = {form: predictor.predict(texts, top_k=3) for form, texts in forms.items() if form != "surname alone"}
    report["answers that differ between the two orders"] = _changed(answers["Given Surname"], answers["Surname, Given"])
    for variant, form, texts in (
        ("a title", "Given Surname", [f"Dr. {name.given} {name.surname}" for name in built]),
        ("an initial", "Given Surname", [f"{name.given} J. {name.surname}" for name in built]),
        ("a title, surname first", "Surname, Given", [f"{name.surname}, Mrs. {name.given}" for name in built]),
        ("an initial, surname first", "Surname, Given", [f"{name.surname}, {name.given} J." for name in built]),
    ):
        report[f"answers changed by adding {variant}"] = _changed(answers[form], predictor.predict(texts, top_k=3))
    return report


def _changed(answers: list[NamePrediction], others: list[NamePrediction]) -> int:
    """How many answers differ in their labels, probabilities or abstention."""
    return sum((a.predictions, a.reason) != (b.predictions, b.reason) for a, b in zip(answers, others, strict=True))


def robustness_report(predictor: Predictor, dataset: NamesDataset) -> dict[str, Any]:
    labels = dataset.labels
    splits = training_splits(dataset, gender_forms=True)
    test = splits.names["test"]
    return {
        "case": case_report(predictor, test, labels),
        "ood": ood_report(predictor, dataset),
        "han": han_report(predictor, labels),
        "abstention": abstention_report(predictor, test),
        "full names": full_name_report(predictor, test, labels),
        "gender forms of test surnames": _headline(served_metrics(predictor, splits.derived["test"], labels)),
        "uniform prior on test": _headline(served_metrics(predictor, test, labels, prior="uniform")),
    }


def format_robustness(report: dict[str, Any]) -> str:
    """The report as aligned text tables."""
    lines = []

    def table(title: str, rows: dict[str, dict[str, Any]]) -> None:
        lines.extend(["", title, f"{'':<44} {'names':>6} {'top-1':>6} {'bal.':>6} {'F1':>6} {'ECE':>6} {'abst.':>6}"])
        for name, m in rows.items():
            lines.append(
                f"{name:<44} {m['num_names']:>6} {m['top1']:>6.3f} {m['balanced_accuracy']:>6.3f} {m['macro_f1']:>6.3f} "
                f"{m['expected_calibration_error']:>6.3f} {m['abstained']:>6.3f}"
            )

    table("Letter case (test split)", report["case"])
    table("Development OOD set (mimesis surnames; bal. = label-balanced top-1; ECE of answered names)", report["ood"])
    for name, values in report["ood"].items():
        if "abstained_by_reason" in values:
            lines.append(f"  {name}: abstained by reason {values['abstained_by_reason']}")
    table(
        "Names in Han characters (mimesis; full names surname first, unspaced or spaced; split: those Chinese reads as a"
        " surname and a given name)",
        report["han"],
    )
    full = report["full names"]
    table(
        f"Full names ({full['full names']} test surnames with a given name of the same origin)",
        {key: full[key] for key in ("surname alone", "Given Surname", "Surname, Given")},
    )
    lines += [f"  {key}: {value}" for key, value in full.items() if key.startswith("answers")]
    table(
        "Other",
        {
            "gender forms of test surnames": report["gender forms of test surnames"],
            "test, uniform prior": report["uniform prior on test"],
        },
    )
    lines += ["", "Abstention"] + [
        f"  {key}: {value if not isinstance(value, float) else f'{value:.4f}'}"
        for key, value in report["abstention"].items()
    ]
    return "\n".join(lines)
