"""Development evaluation sets built at run time: names from outside the training data.

- **The out-of-distribution (OOD) set**: the surnames of mimesis's per-locale person data (MIT
  licence; built from the installed package at evaluation time, never committed, never trained
  on), mapped to our labels, each in its native script and romanized. mimesis writes Russian in
  Cyrillic, Greek in Greek, Arabic in Arabic, Japanese in kanji, Korean in Hangul and Chinese in
  Han; those are romanized here the way their speakers romanize names (Japanese, Korean, Greek and
  Arabic with this project's readers: Hepburn, customary Korean, ELOT 743, customary Arabic; the
  rest with unidecode), in title case. unidecode's own romanization ("`Bd Llh" for عبد الله,
  "Abramide" for Αβραμίδη) is kept as a third variant, since earlier releases were measured on it.
  Every name whose native form or romanization is a name of data/names is removed. Irish,
  Scottish and Vietnamese have no mimesis locale, so the set covers 15 of the 18 labels.
- **Full names**: a test-split surname with a given name of the same origin from mimesis, in
  "Given Surname" and "Surname, Given" order.
- **Names in Han characters**: mimesis's Chinese and Japanese surnames written in Han characters alone,
  and each with a given name of the same list, written as the two languages write a full name: surname
  first, no space (王小明, 田中太郎).
- **Random strings**: letters drawn uniformly, 3-10 of them, each in a random case.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from unidecode import unidecode

from model.arabic_reader import read_arabic
from model.encoder import clean_text, name_key, normalize
from model.greek_reader import read_greek
from model.readers import read_japanese, read_korean
from model.scripts import HAN, scripts_of
from training.data import NameRecord

logger = logging.getLogger(__name__)

# mimesis locale -> our label. Variants of one language pool their names.
LOCALE_LABELS = {
    "ar": "Arabic",
    "ar-ae": "Arabic",
    "ar-dz": "Arabic",
    "ar-eg": "Arabic",
    "ar-jo": "Arabic",
    "ar-kw": "Arabic",
    "ar-ma": "Arabic",
    "ar-om": "Arabic",
    "ar-qa": "Arabic",
    "ar-sa": "Arabic",
    "ar-sy": "Arabic",
    "ar-tn": "Arabic",
    "ar-ye": "Arabic",
    "zh": "Chinese",
    "cs": "Czech",
    "nl": "Dutch",
    "nl-be": "Dutch",
    "en": "English",
    "en-gb": "English",
    "fr": "French",
    "de": "German",
    "de-at": "German",
    "de-ch": "German",
    "el": "Greek",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "pl": "Polish",
    "pt": "Portuguese",
    "pt-br": "Portuguese",
    "ru": "Russian",
    "es": "Spanish",
    "es-mx": "Spanish",
}
RANDOM_STRING_SEED = 2026


class MissingSourceError(RuntimeError):
    """The public name source (the mimesis package) is not installed."""


@dataclass(frozen=True)
class OodName:
    native: str  # as mimesis writes it
    romanized: str  # as its speakers romanize it (`romanize`)
    unidecoded: str  # unidecode's letter-by-letter transliteration, title case
    label: str
    gender: str  # "male", "female" or "any" (a locale that does not split its list)


def mimesis_datasets_dir() -> Path:
    try:
        import mimesis  # a development dependency: only evaluation needs it
    except ImportError as error:
        raise MissingSourceError(
            "the development OOD set needs the mimesis package: pip install -e '.[dev]'"
        ) from error
    return Path(mimesis.__file__).parent / "datasets"


# The romanization each label's speakers write their names in, where it is not unidecode's.
ROMANIZERS: dict[str, Callable[[str], str]] = {
    "Japanese": read_japanese,  # Hepburn
    "Korean": read_korean,  # customary surname spellings, else Revised Romanization
    "Greek": read_greek,  # ELOT 743, the passport standard
    "Arabic": read_arabic,  # customary spellings with the short vowels a reader supplies
}


def romanize(native: str, label: str) -> str:
    """A native-script name in the romanization its speakers use, title case."""
    return _latin_title(ROMANIZERS.get(label, unidecode)(native))


def _latin_title(text: str) -> str:
    """A romanization as the set writes it: cleaned, title case."""
    return clean_text(text).title()


def _person_lists(locale: str, key: str) -> list[tuple[str, str]]:
    """(name, gender) pairs of one locale's `surnames` or `names` list."""
    path = mimesis_datasets_dir() / locale / "person.json"
    values = json.loads(path.read_text(encoding="utf-8")).get(key) or []
    if isinstance(values, dict):
        return [(name, gender) for gender, names in sorted(values.items()) for name in names]
    return [(name, "any") for name in values]


@functools.cache
def _by_label(key: str) -> dict[str, list[OodName]]:
    """mimesis's `key` list per label (read once per process; callers do not change it)."""
    found: dict[str, dict[str, OodName]] = {}
    for locale, label in sorted(LOCALE_LABELS.items()):
        for native, gender in _person_lists(locale, key):
            native = clean_text(native)
            if native:
                found.setdefault(label, {}).setdefault(
                    name_key(native),
                    OodName(native, romanize(native, label), _latin_title(unidecode(native)), label, gender),
                )
    return {label: list(names.values()) for label, names in sorted(found.items())}


def ood_surnames(known: list[NameRecord], also_exclude: Sequence[str] = ()) -> list[OodName]:
    """The OOD surnames: every mimesis surname of a mapped locale that is not a name of `known`
    (compared as written and as the network reads either romanization), nor one of `also_exclude`."""
    known_keys = {name_key(record.name) for record in known} | {name_key(name) for name in also_exclude}
    known_readings = {normalize(record.name) for record in known} | {normalize(name) for name in also_exclude}
    kept = [
        name
        for names in _by_label("surnames").values()
        for name in names
        if name_key(name.native) not in known_keys
        and normalize(name.romanized) not in known_readings
        and normalize(name.unidecoded) not in known_readings
    ]
    logger.info("OOD set: %d surnames under %d labels", len(kept), len({name.label for name in kept}))
    return kept


def given_names() -> dict[str, list[OodName]]:
    """mimesis's given names per label."""
    return _by_label("names")


@dataclass(frozen=True)
class FullName:
    surname: str
    given: str
    labels: frozenset[str]

    @property
    def given_first(self) -> str:
        return f"{self.given} {self.surname}"

    @property
    def surname_first(self) -> str:
        return f"{self.surname}, {self.given}"


def full_names(test_records: list[NameRecord], per_label: int = 60, seed: int = 0) -> list[FullName]:
    """Test-split surnames each with a (male or unsplit) given name of the same origin, romanized:
    up to `per_label` per label that mimesis has given names for."""
    rng = random.Random(seed)
    pools = {
        label: [name.romanized for name in names if name.gender != "female"] for label, names in given_names().items()
    }
    built: list[FullName] = []
    for label, pool in sorted(pools.items()):
        surnames = [record for record in test_records if label in record.labels]
        for record in rng.sample(surnames, min(per_label, len(surnames))):
            built.append(FullName(record.name, rng.choice(pool), record.labels))
    return built


HAN_LABELS = ("Chinese", "Japanese")  # the labels whose names mimesis writes in Han characters


def han_names(per_label: int = 600, seed: int = 0) -> dict[str, list[NameRecord]]:
    """{"<label> surnames": every mimesis surname of the label written in Han characters alone,
    "<label> full names": up to `per_label` of them each with a given name so written, unspaced,
    "<label> full names, spaced": the same names with a space between surname and given name}."""
    rng = random.Random(seed)
    built: dict[str, list[NameRecord]] = {}
    for label in HAN_LABELS:
        surnames = [name.native for name in _by_label("surnames").get(label, []) if _han_only(name.native)]
        given = [name.native for name in given_names().get(label, []) if _han_only(name.native)]
        labels = frozenset({label})
        built[f"{label} surnames"] = [NameRecord(surname, labels) for surname in surnames]
        if surnames and given:
            pairs = [(rng.choice(surnames), rng.choice(given)) for _ in range(per_label)]
            built[f"{label} full names"] = [NameRecord(surname + first, labels) for surname, first in pairs]
            built[f"{label} full names, spaced"] = [
                NameRecord(f"{surname} {first}", labels) for surname, first in pairs
            ]
    return built


def _han_only(text: str) -> bool:
    return bool(text) and all(scripts_of(char) == (HAN,) for char in text)


def random_strings(count: int = 2000, seed: int = RANDOM_STRING_SEED) -> list[str]:
    """Uniformly random letters, 3-10 of them, each upper or lower case at random."""
    rng = random.Random(seed)
    letters = string.ascii_lowercase
    return [
        "".join(
            rng.choice(letters).upper() if rng.random() < 0.5 else rng.choice(letters)
            for _ in range(rng.randint(3, 10))
        )
        for _ in range(count)
    ]
