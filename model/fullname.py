"""Splitting a full name into the parts that carry its origin: surnames and given names.

"Mrs. Anna van der Berg", "Berg, Anna van der", "Dr. J. R. Tanaka", "Nguyen Van Minh" and
"O'Brien" are everyday input. Titles (at the start of a part) and suffixes (at its end) say nothing
about origin and are dropped, as are initials; a particle (van der, de, al-, Ní, O') is kept with
the word after it, the way the training data writes such names ("Von brandt", "De luca"); a comma
separates "Surname, Given". Hyphenated words stay whole (Min-jun, Müller-Lüdenscheidt). Matching
ignores case and a trailing full stop, so "MRS", "mrs." and "Mrs" are the same title.
"""

from __future__ import annotations

import re

from model.scripts import LATIN, letter_script

# Words that are titles only, never someone's surname in the training data (a test checks it).
# Left out on purpose because they are also surnames or given names: Pan (Polish "Mr." and a
# Chinese surname), Don, Dona, Lord, Sen, Hon, Ing, Sheikh, Bey.
TITLES = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "master",
        "dr",
        "prof",
        "professor",
        "rev",
        "revd",
        "fr",
        "sr",
        "sra",
        "srta",
        "mme",
        "mlle",
        "mm",
        "m",
        "monsieur",
        "madame",
        "mademoiselle",
        "herr",
        "frau",
        "hr",
        "fru",
        "sig",
        "sigra",
        "signor",
        "signora",
        "signorina",
        "dott",
        "dottssa",
        "mgr",
        "pani",
        "dame",
        "sir",
        "capt",
        "col",
        "gen",
        "lt",
        "sgt",
        "mister",
        "missus",
        "doctor",
    }
)
SUFFIXES = frozenset(
    {"jr", "jnr", "sr", "snr", "ii", "iii", "iv", "phd", "md", "esq", "dds", "mba", "bsc", "msc", "obe", "mbe"}
)
# Words that belong to the surname after them. Not "ben" (a given name), nor "y" / "e" of "García y
# López": one letter, they go as initials do.
PARTICLES = frozenset(
    {
        "van",
        "von",
        "der",
        "den",
        "de",
        "del",
        "della",
        "delle",
        "dei",
        "degli",
        "di",
        "da",
        "das",
        "dos",
        "do",
        "du",
        "la",
        "le",
        "lo",
        "ter",
        "ten",
        "te",
        "st",
        "ste",
        "saint",
        "san",
        "santa",
        "al",
        "el",
        "bin",
        "ibn",
        "bint",
        "abu",
        "abou",
        "abd",
        "abdul",  # Abdul Karim: "servant of" and the name after it are one name
        "abdel",
        "binti",  # Malay "daughter of"
        "mac",
        "mc",
        "ó",
        "ní",
        "nic",
        "ui",
        "uí",
        "mag",
        "ap",
        "zu",
        "aan",
        "het",
        "'t",
        "op",
        "uit",
    }
)
_SEPARATORS = re.compile(r"[\s\u30fb]+")  # whitespace, and the katakana middle dot of ジョン・スミス
_INITIAL_PIECES = re.compile(r"[.-]")
_ARTICLE_PREFIX = re.compile(r"^(al|el)-(?=\w)", re.IGNORECASE)  # al-Sayed: the article, then the name


def _bare(word: str) -> str:
    return word.rstrip(".").casefold()


def _is_initial(word: str) -> bool:
    """ "J", "J.", "A.B.", "J.-P.": single Latin letters, each optionally followed by a full stop
    (a particle such as Ó is not an initial)."""
    if _bare(word) in PARTICLES:
        return False
    letters = [char for char in word if char.isalpha()]
    if not letters or any(letter_script(char) != LATIN for char in letters):
        return False  # 王 or 김 alone is a whole name, not an initial
    pieces = [piece for piece in _INITIAL_PIECES.split(word) if piece]
    return all(len(piece) == 1 for piece in pieces) and (len(letters) == 1 or "." in word)


def _part_tokens(words: list[str]) -> list[str]:
    """The name tokens of one comma-separated part: titles, suffixes and initials out, particles joined
    (without a trailing full stop: "St. John" is read as "St John")."""
    words = [part for word in words for part in (_ARTICLE_PREFIX.sub(r"\1 ", word).split(" "))]
    while len(words) > 1 and _bare(words[0]) in TITLES:
        words = words[1:]
    while len(words) > 1 and _bare(words[-1]) in SUFFIXES:
        words = words[:-1]
    kept = [word for word in words if not _is_initial(word)] or words
    tokens: list[str] = []
    pending: list[str] = []  # particles waiting for the word they belong to
    for word in kept:
        if _bare(word) in PARTICLES:
            pending.append(word.rstrip("."))
            continue
        tokens.append(" ".join([*pending, word]))
        pending = []
    if pending:  # "Berg, Anna van der": particles with no word after them are a token of their own
        tokens.append(" ".join(pending))
    return tokens


def split_full_name(text: str) -> tuple[tuple[str, ...], int, bool]:
    """The name tokens of a cleaned name in the order written (one token for a single surname), how
    many of them come before a comma ("Surname, Given": the surnames), 0 when there is none, and
    whether the name is nothing but titles, suffixes and initials ("Mr.", "J.").

    A part that is only a title, suffix or initial ("Smith, Jr.") is dropped when another part
    remains; a name that is nothing else is kept whole, so it is still read.
    """
    parts = [words for part in text.split(",") if (words := [w for w in _SEPARATORS.split(part) if w])]
    noise = [all(_is_noise(word) for word in words) for words in parts]
    kept = [
        _part_tokens(words) for words, only_noise in zip(parts, noise, strict=True) if len(parts) == 1 or not only_noise
    ]
    tokens = tuple(token for part in kept for token in part)
    only_titles = bool(parts) and all(noise)
    if not tokens:
        return tuple(w for words in parts for w in words), 0, only_titles
    return tokens, len(kept[0]) if len(kept) > 1 else 0, only_titles


def _is_noise(word: str) -> bool:
    return _bare(word) in TITLES or _bare(word) in SUFFIXES or _is_initial(word)
