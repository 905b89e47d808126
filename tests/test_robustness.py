"""The names people really send, on the shipped model: case, scripts, abstention, full names, the OOD set.

These are the issue's bars that the shipped model meets, checked on the real data; the figures
themselves are printed by `python -m training.evaluate --robustness`.
"""

from __future__ import annotations

import pytest

from model.encoder import name_key, normalize
from model.predictor import Predictor
from training.augment import training_splits
from training.data import NameRecord, load_names_dir
from training.evaluate import main as evaluate_main
from training.metrics import served_metrics
from training.ood import LOCALE_LABELS, full_names, han_names, ood_surnames, random_strings, romanize
from training.robustness import abstention_report, case_report, full_name_report, han_report, ood_records


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.from_path(device="cpu")


@pytest.fixture(scope="module")
def dataset():
    return load_names_dir("data/names")


@pytest.fixture(scope="module")
def test_names(dataset):
    return training_splits(dataset, gender_forms=True).names["test"]


def test_ood_set_leaves_out_every_name_of_the_data(dataset):
    names = ood_surnames(list(dataset.records))
    known = {name_key(record.name) for record in dataset.records}
    readings = {normalize(record.name) for record in dataset.records}
    assert len(names) > 20_000 and len({name.label for name in names}) == 15
    assert not [
        name
        for name in names
        if name_key(name.native) in known or {normalize(name.romanized), normalize(name.unidecoded)} & readings
    ]
    assert set(LOCALE_LABELS.values()) <= set(dataset.labels)


def test_ood_set_romanizes_native_scripts_the_way_their_speakers_do():
    assert romanize("田中", "Japanese") == "Tanaka" and romanize("김", "Korean") == "Kim"
    assert romanize("Иванова", "Russian") == "Ivanova" and romanize("Dvořák", "Czech") == "Dvorak"
    assert romanize("Αβραμίδη", "Greek") == "Avramidi"  # ELOT 743, where unidecode writes "Abramide"
    assert romanize("عبد الله", "Arabic") == "Abd Allah"  # where unidecode writes "`Bd Llh"


def test_han_names_are_han_alone_and_full_names_a_surname_then_a_given_name_unspaced_and_spaced():
    built = han_names()
    assert sorted(built) == [
        f"{label} {kind}"
        for label in ("Chinese", "Japanese")
        for kind in ("full names", "full names, spaced", "surnames")
    ]
    assert built == han_names()  # the same sample every run
    for label in ("Chinese", "Japanese"):
        surnames = {record.name for record in built[f"{label} surnames"]}
        full, spaced = built[f"{label} full names"], built[f"{label} full names, spaced"]
        assert len(surnames) > 400 and len(full) == 600
        assert all(record.labels == {label} for record in [*built[f"{label} surnames"], *full, *spaced])
        assert all(" " not in record.name and any(record.name.startswith(s) for s in surnames) for record in full)
        assert [record.name.split(" ")[0] in surnames for record in spaced] == [True] * 600
        assert [record.name.replace(" ", "") for record in spaced] == [record.name for record in full]
    assert all(romanize(record.name, "Chinese") != record.name for record in built["Chinese surnames"])


def test_three_han_characters_read_as_a_chinese_full_name_lift_chinese_and_cost_japanese_nothing(shipped):
    """The rule's development figures (README.md, "Names in Han characters") hold: most Chinese
    three-character names answered Chinese, the Japanese names still answered Japanese."""
    report = han_report(shipped, shipped.labels)
    assert report["Chinese full names, split, dataset prior"]["top1"] >= 0.7
    assert report["Chinese full names, split, uniform prior"]["top1"] >= 0.85
    assert report["Japanese surnames, dataset prior"]["top1"] >= 0.95
    assert report["Japanese full names, dataset prior"]["top1"] >= 0.99


def test_spaced_japanese_names_in_han_are_answered_japanese_as_surname_first(shipped):
    """佐藤 健: Japanese writes the surname first in Han characters (README.md, "Names in Han
    characters": 0.817 / 0.640 before, Chinese 0.885 / 0.957)."""
    report = han_report(shipped, shipped.labels)
    assert report["Japanese full names, spaced, dataset prior"]["top1"] >= 0.88
    assert report["Japanese full names, spaced, uniform prior"]["top1"] >= 0.78
    assert report["Chinese full names, spaced, dataset prior"]["top1"] >= 0.8
    assert report["Chinese full names, spaced, uniform prior"]["top1"] >= 0.9


def test_random_strings_are_3_to_10_letters_in_any_case():
    strings = random_strings()
    assert len(strings) == 2000 and len(set(strings)) > 1990
    assert all(3 <= len(text) <= 10 and text.isalpha() and text.isascii() for text in strings)
    assert any(text.isupper() for text in strings) and any(
        not text.islower() and not text.isupper() for text in strings
    )
    assert strings == random_strings()  # seeded: the same set every run


def test_full_names_pair_test_surnames_with_given_names_of_their_origin(test_names):
    built = full_names(test_names)
    assert len(built) >= 500
    surnames = {record.name for record in test_names}
    assert all(name.surname in surnames for name in built)
    assert built[0].given_first == f"{built[0].given} {built[0].surname}"
    assert built[0].surname_first == f"{built[0].surname}, {built[0].given}"


@pytest.mark.timeout(300)
def test_shipped_model_answers_every_letter_case_of_the_test_names_identically(shipped, test_names, dataset):
    report = case_report(shipped, test_names, dataset.labels)
    assert report["upper"] == report["as written"] == report["lower"]
    mixed = [NameRecord(record.name.swapcase(), record.labels) for record in test_names[:300]]
    plain = served_metrics(shipped, test_names[:300], dataset.labels)
    assert served_metrics(shipped, mixed, dataset.labels)["top1"] == plain["top1"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("upper", "lower"),
    [("İ", "i\u0307"), ("ǰ".upper(), "ǰ"), ("H\u0331", "ẖ"), ("\u03aa\u0301", "ΐ"), ("İ Lee", "i\u0307 lee")],
)
def test_a_letter_nfkc_leaves_with_its_mark_reads_as_one_letter_in_either_case(shipped, upper, lower):
    """ "i\u0307", the lower case of İ, is two code points: it was a name (Japanese 0.76) where İ was an initial."""
    first, second = shipped.predict([upper, lower])
    assert (first.reason, first.predictions) == (second.reason, second.predictions)


def test_shipped_model_abstains_on_random_letters_and_rarely_on_test_names(shipped, test_names):
    report = abstention_report(shipped, test_names)
    assert report["test names abstained"] <= 0.03
    assert report["random strings abstained as not-a-name"] >= 0.90


@pytest.mark.timeout(300)
def test_shipped_model_full_names_are_at_least_as_right_as_their_surname_and_ignore_titles(
    shipped, test_names, dataset
):
    report = full_name_report(shipped, test_names, dataset.labels)
    alone = report["surname alone"]["top1"]
    assert report["Given Surname"]["top1"] >= alone and report["Surname, Given"]["top1"] >= alone
    for key, changed in report.items():
        if key.startswith("answers changed by adding"):
            assert changed == 0, key


@pytest.mark.timeout(300)
def test_shipped_model_native_script_beats_romanized_and_is_calibrated_on_the_ood_set(shipped, dataset):
    """Under the uniform prior (the OOD set's label mix is mimesis's list sizes, not a population).
    Romanized, its calibration error is above 0.10 (README, "Names as people send them"): not asserted."""
    records = ood_records(dataset)
    native = served_metrics(shipped, records["native"], dataset.labels, prior="uniform")
    romanized = served_metrics(shipped, records["romanized"], dataset.labels, prior="uniform")
    assert native["balanced_accuracy"] >= romanized["balanced_accuracy"] + 0.10
    assert native["expected_calibration_error"] <= 0.10


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("田中", "Japanese"),
        ("佐藤", "Japanese"),
        ("さとう", "Japanese"),
        ("김", "Korean"),
        ("이", "Korean"),
        ("박", "Korean"),
        ("김민준", "Korean"),
        ("王", "Chinese"),
        ("刘", "Chinese"),
        ("Παπαδόπουλος", "Greek"),
        ("Иванова", "Russian"),
        ("محمد", "Arabic"),
        ("Osama bin Laden", "Arabic"),
        ("Abu Bakr", "Arabic"),
        ("Abdul Karim", "Arabic"),
        ("Łukasiewicz", "Polish"),
        ("Dvořák", "Czech"),
        ("Nováková", "Czech"),
        ("Kowalska", "Polish"),
        ("Ivanova", "Russian"),
        ("IVANOV", "Russian"),
        ("SMITH", "English"),
        ("nguyen", "Vietnamese"),
        ("Nguyen Van Minh", "Vietnamese"),
        ("Le Van Thanh", "Vietnamese"),  # Lê and Văn, not the particles of Le Pen and van Gogh
        ("Le Thi Hoa", "Vietnamese"),
        ("Do Van Hung", "Vietnamese"),
        ("Ivan Petrov", "Russian"),
        ("Kim Min-jun", "Korean"),  # a hyphenated given name of Korean syllables (it was Chinese 0.61)
        ("Min-jun Kim", "Korean"),
        ("Son Heung-min", "Korean"),
        ("Bong Joon-ho", "Korean"),
        ("Chan Ka-ming", "Chinese"),
        ("Pieter van den Berg", "Dutch"),  # the data writes Dutch particles joined: evidence says it
        ("Rafael van der Vaart", "Dutch"),  # Hong Kong names are hyphenated too: a Chinese surname keeps them
        ("Mrs. Tanaka", "Japanese"),
        ("Tanaka, Hiroshi", "Japanese"),
        ("Müller", "German"),
        ("Muñoz", "Spanish"),
    ],
)
def test_shipped_model_reads_everyday_names_the_issue_lists(shipped, name, label):
    answer = shipped.predict([name], top_k=1)[0]
    assert not answer.abstained and answer.predictions[0].label == label, answer


@pytest.mark.parametrize(
    "name", ["Da Silva Joao", "Le Blanc Jean", "La Russa Tony", "Van Gogh Vincent", "Du Toit Johan"]
)
def test_western_surnames_written_first_with_a_particle_are_not_read_as_vietnamese(shipped, name):
    """Le, La, Do and Van open Vietnamese names only before Vietnamese syllables (model.fullname)."""
    answer = shipped.predict([name], top_k=1)[0]
    assert not answer.abstained and answer.predictions[0].label != "Vietnamese", answer


@pytest.mark.parametrize(
    "name", ["qwerty", "Xzqwv", "null", "N/A", "asdfgh", "zxcvbnm", "TEST", "so-so", "yo-yo", "do-re-mi", "Na-na Na-na"]
)
def test_shipped_model_abstains_on_strings_that_are_not_names(shipped, name):
    answer = shipped.predict([name])[0]
    assert answer.abstained and answer.reason == "not-a-name"


@pytest.mark.timeout(300)
def test_evaluate_robustness_prints_every_section(capsys):
    assert evaluate_main(["--robustness", "--device", "cpu"]) == 0
    output = capsys.readouterr().out
    for section in ("Letter case", "Development OOD set", "Full names", "Abstention", "uniform prior"):
        assert section in output
