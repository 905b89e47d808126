"""Reading `data/names/<Label>.txt`, deduplicating names into label sets, and the hash split.

The split is reproducible without this code: key = NFKC + casefold + trim,
bucket = int(sha256(key)[:8], 16) % 10; buckets 0-7 train, 8 val, 9 test.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from model.encoder import EncoderConfig, NameEncoder, NameEncodingError, clean_text, name_key

logger = logging.getLogger(__name__)

SPLIT_RULE = (
    "key = NFKC(name).casefold().strip(); bucket = int(sha256(key utf-8).hexdigest()[:8], 16) % 10;"
    " 0-7 train, 8 val, 9 test"
)
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """The names folder cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class NameRecord:
    """One distinct name (by key) and every label it appears under.

    share: the part of its family's training weight this spelling carries: 1 for a name on its
    own, 0.5 for a name and for the other-gender form derived from it (`training.augment`).
    """

    name: str
    labels: frozenset[str]
    share: float = 1.0


@dataclass(frozen=True)
class NamesDataset:
    """All distinct names of a folder, the sorted label list, and the data fingerprint."""

    records: tuple[NameRecord, ...]
    labels: tuple[str, ...]
    fingerprint: str

    def split(self, split_name: str) -> list[NameRecord]:
        if split_name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split_name!r}")
        return [record for record in self.records if split_of(record.name) == split_name]


def split_of(name: str) -> str:
    """Which split a name belongs to, by a stable hash of its key."""
    bucket = int(hashlib.sha256(name_key(name).encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def fingerprint_pairs(pairs: set[tuple[str, str]]) -> str:
    """sha256 over the sorted normalized (label, name) pairs, one 'label<TAB>name' line each."""
    digest = hashlib.sha256()
    for label, name in sorted(pairs):
        digest.update(f"{label}\t{name}\n".encode())
    return "sha256:" + digest.hexdigest()


# C0 control characters a text file of names never holds (tab, line feed and carriage return aside): a
# NUL is the mark of UTF-16 read as UTF-8, which decodes without error and trained on "\x00A\x00d...".
_CONTROL_CHARACTERS = {chr(code) for code in range(32)} - {"\t", "\n", "\r"}


def read_label_file(path: Path) -> list[str]:
    """The cleaned, non-blank names of one file; tolerates a BOM, CRLF and surrounding spaces. A line the
    model cannot read (no letters, too long, a control character) is refused here, naming its file and
    line, rather than when its split is encoded (for a test name, after the whole held-out run)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = path.read_bytes()[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line_number} is not valid UTF-8 ({error.reason} at byte {error.start})"
        ) from error
    names = []
    encoder = _default_encoder()
    for line_number, line in enumerate(text.splitlines(), start=1):
        if _CONTROL_CHARACTERS.intersection(line):
            hint = " (a NUL: is the file UTF-16? save it as UTF-8)" if "\x00" in line else ""
            raise DataError(f"{path}: line {line_number} holds a control character{hint}: {line[:60]!r}")
        cleaned = clean_text(line)
        if not cleaned:
            continue
        try:
            encoder.encode(cleaned)
        except NameEncodingError as error:
            raise DataError(f"{path}: line {line_number}: {error}") from None
        names.append(cleaned)
    return names


@functools.lru_cache(maxsize=1)
def _default_encoder() -> NameEncoder:
    """The encoder the trainer reads names with (its default configuration)."""
    return NameEncoder(EncoderConfig())


def load_names_dir(names_dir: str | Path) -> NamesDataset:
    """Read every `<Label>.txt` in a folder into distinct names with label sets."""
    folder = Path(names_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected a folder of <Label>.txt files)")
    files = sorted(path for path in folder.glob("*.txt") if not path.name.startswith("."))
    hidden = sorted(path.name for path in folder.glob(".*.txt"))
    if hidden:  # .DS_Store's kin: macOS writes ._English.txt beside English.txt on other file systems
        logger.warning("%s: skipping hidden files %s", folder, hidden)
    if not files:
        raise DataError(f"{folder}: no <Label>.txt files found")
    by_case: dict[str, str] = {}
    for path in files:
        other = by_case.setdefault(path.stem.casefold(), path.name)
        if other != path.name:  # english.txt beside English.txt: the same label twice, its names two-label
            raise DataError(f"{folder}: {other} and {path.name} name the same label in different case; merge them")
    names_by_key: dict[str, str] = {}
    labels_by_key: dict[str, set[str]] = {}
    pairs: set[tuple[str, str]] = set()
    for path in files:
        label = path.stem
        names = read_label_file(path)
        if not names:
            raise DataError(f"{path}: file has no names")
        for name in names:
            key = name_key(name)
            names_by_key[key] = min(names_by_key.get(key, name), name)
            labels_by_key.setdefault(key, set()).add(label)
            pairs.add((label, name))
    labels = tuple(sorted(path.stem for path in files))
    if len(labels) < 2:
        raise DataError(f"{folder}: found only one label ({labels[0]}); a classifier needs two or more")
    records = tuple(NameRecord(names_by_key[key], frozenset(labels_by_key[key])) for key in sorted(names_by_key))
    logger.info("read %d distinct names under %d labels from %s", len(records), len(labels), folder)
    return NamesDataset(records=records, labels=labels, fingerprint=fingerprint_pairs(pairs))


def label_pairs(records: list[NameRecord]) -> list[tuple[str, str]]:
    """Distinct (name, label) training pairs: a name under two labels is seen once with each."""
    return [(record.name, label) for record in records for label in sorted(record.labels)]
