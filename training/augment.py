"""Both genders of inflected surnames: the regular feminine (and masculine) forms, derived by rule.

Slavic and Greek surnames change with the bearer's gender (Ivanov / Ivanova, Kowalski / Kowalska,
Novák / Nováková, Papadopoulos / Papadopoulou), but the training files hold almost only one form:
6 of 8,429 Russian names end in -ova, -eva or -ina. Each rule below turns a regular ending into the
other gender's; irregular endings (Czech -el, Russian -ko, invariant names) get no form. A derived
form is a training name of the source's label only, and it lives in its source name's split, so no
spelling of a test family is ever trained on. A family's weight is shared between its two forms, so
deriving forms does not make a label weigh more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from model.encoder import name_key
from training.data import SPLITS, NameRecord, NamesDataset, split_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuffixRule:
    """Replace `ending` (matched case-insensitively) with `replacement`; the name must keep a stem
    of at least `min_stem` letters, so "Ov" or "Sky" alone are left as they are."""

    ending: str
    replacement: str
    min_stem: int = 2


# Per label, tried in order; the first rule whose ending matches is used.
GENDER_RULES: dict[str, tuple[SuffixRule, ...]] = {
    "Russian": (
        SuffixRule("skiy", "skaya"),
        SuffixRule("skii", "skaya"),
        SuffixRule("skij", "skaya"),
        SuffixRule("sky", "skaya"),
        SuffixRule("skoy", "skaya"),
        SuffixRule("skaya", "sky"),
        SuffixRule("oy", "aya", 3),
        SuffixRule("iy", "aya", 3),
        SuffixRule("yy", "aya", 3),
        SuffixRule("ova", "ov"),
        SuffixRule("eva", "ev"),
        SuffixRule("yova", "yov"),
        SuffixRule("ov", "ova"),
        SuffixRule("ev", "eva"),
        SuffixRule("in", "ina", 3),
        SuffixRule("yn", "yna", 3),
    ),
    "Polish": (
        SuffixRule("ski", "ska"),
        SuffixRule("cki", "cka"),
        SuffixRule("dzki", "dzka"),
        SuffixRule("ska", "ski"),
        SuffixRule("cka", "cki"),
        SuffixRule("dzka", "dzki"),
    ),
    "Czech": (
        SuffixRule("ová", "", 99),
        SuffixRule("ova", "", 99),  # -ová: the masculine is not recoverable (Nováková)
        SuffixRule("ský", "ská"),
        SuffixRule("cký", "cká"),
        SuffixRule("sky", "ska"),
        SuffixRule("cky", "cka"),
        SuffixRule("ská", "ský"),
        SuffixRule("cká", "cký"),
        SuffixRule("ý", "á"),
        SuffixRule("y", "a", 3),
        SuffixRule("ek", "ková"),
        SuffixRule("ec", "cová"),
        SuffixRule("a", "ová", 3),
        SuffixRule("el", "", 99),
        SuffixRule("e", "", 99),
        SuffixRule("i", "", 99),
        SuffixRule("o", "", 99),
        SuffixRule("u", "", 99),
        SuffixRule("ů", "", 99),
    ),
    "Greek": (
        SuffixRule("os", "ou", 3),
        SuffixRule("is", "i", 3),
        SuffixRule("as", "a", 3),
    ),
}
CZECH_CONSONANT_FORM = "ová"  # Novák -> Nováková: any other consonant ending


def _match_case(replacement: str, like: str) -> str:
    return replacement.upper() if like.isupper() else replacement


def _ascii_if(text: str, ascii_source: bool) -> str:
    """Czech endings come with their accents unless the source is written without any (as the data is)."""
    return text.translate(str.maketrans("áýó", "ayo")) if ascii_source else text


def other_gender_form(name: str, label: str) -> str | None:
    """The regular other-gender form of a surname of `label`, or None when no rule applies."""
    rules = GENDER_RULES.get(label)
    if not rules or " " in name or "-" in name:
        return None
    lower = name.lower()
    ascii_source = name.isascii()
    for rule in rules:
        if lower.endswith(rule.ending):
            stem = name[: len(name) - len(rule.ending)]
            if sum(char.isalpha() for char in stem) < rule.min_stem or not rule.replacement:
                return None
            tail = name[len(stem) :]
            return stem + _match_case(_ascii_if(rule.replacement, ascii_source), tail)
    if label == "Czech" and name[-1:].isalpha() and sum(char.isalpha() for char in name) >= 3:
        return name + _match_case(_ascii_if(CZECH_CONSONANT_FORM, ascii_source), name[-1])
    return None


@dataclass(frozen=True)
class DerivedName:
    """A generated spelling and the real name it came from (whose split it shares)."""

    record: NameRecord
    source: str

    @property
    def split(self) -> str:
        return split_of(self.source)


def derive_gender_forms(records: list[NameRecord]) -> list[DerivedName]:
    """Every new other-gender form of the records' names, under the label it was derived for.

    A form that is already a name in the data (under any label) is not generated again: the files'
    own record of it stands.
    """
    known = {name_key(record.name) for record in records}
    derived: dict[str, DerivedName] = {}
    for record in records:
        for label in sorted(record.labels):
            form = other_gender_form(record.name, label)
            if form is None or name_key(form) in known or name_key(form) in derived:
                continue
            derived[name_key(form)] = DerivedName(NameRecord(form, frozenset({label})), record.name)
    logger.info("derived %d other-gender forms from %d names", len(derived), len(records))
    return list(derived.values())


@dataclass(frozen=True)
class TrainingSplits:
    """The files' names per split (shares halved where a form was derived) and the derived forms,
    each in its source name's split."""

    names: dict[str, list[NameRecord]]
    derived: dict[str, list[NameRecord]]

    def trained(self, split: str) -> list[NameRecord]:
        """What a network fits on for a split: its names and their derived forms."""
        return self.names[split] + self.derived[split]


def training_splits(dataset: NamesDataset, gender_forms: bool, form_share: float = 0.5) -> TrainingSplits:
    """The dataset's splits, with the other-gender forms of their names when `gender_forms`; a derived
    form carries `form_share` of its family's training weight and the file's spelling the rest."""
    if not 0.0 < form_share < 1.0:
        raise ValueError(f"form_share must be between 0 and 1 (exclusive), got {form_share}")
    derived = derive_gender_forms(list(dataset.records)) if gender_forms else []
    sources = {name_key(form.source) for form in derived}
    names: dict[str, list[NameRecord]] = {}
    forms: dict[str, list[NameRecord]] = {}
    for split in SPLITS:
        names[split] = [
            replace(record, share=1.0 - form_share) if name_key(record.name) in sources else record
            for record in dataset.split(split)
        ]
        forms[split] = [replace(form.record, share=form_share) for form in derived if form.split == split]
    return TrainingSplits(names, forms)
