"""Splitting a full name into the parts that carry its origin: surnames and given names.

"Mrs. Anna van der Berg", "Berg, Anna van der", "Dr. J. R. Tanaka", "Nguyen Van Minh" and
"O'Brien" are everyday input. Titles (at the start of a part) and suffixes (at its end) say nothing
about origin and are dropped, as are initials; a particle (van der, de, al-, Ní, O') is kept with
the word after it, the way the training data writes such names ("Von brandt", "De luca"), except
where Le, Do, La or Van open a Vietnamese name ("Le Van Thanh": three names); a comma
separates "Surname, Given". Hyphenated words stay whole (Min-jun, Müller-Lüdenscheidt). Matching
ignores case and a trailing full stop, so "MRS", "mrs." and "Mrs" are the same title.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from model.encoder import normalize
from model.readers import is_hyphenated_korean_given_name
from model.scripts import CYRILLIC, GREEK, LATIN, as_one_alphabet, letter_script, scripts_of

INITIAL_SCRIPTS = frozenset({LATIN, CYRILLIC, GREEK})  # alphabets whose names are written with initials

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
        "pd",
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
        "los",  # de los Santos, de las Casas
        "las",
        "dal",  # Dal Lago, Dalla Costa
        "dalla",
        "vom",  # vom Stein, zum Felde, zur Linden
        "zum",
        "zur",
    }
)
# Words that introduce a birth surname inside a name ("Smith (née Jones)", "Nováková rozená Dvořáková",
# "Kowalska z domu Nowak"): they say nothing of its origin and are dropped wherever they stand but as a
# part's last word, which is always kept, so a surname Nee stays a name. Abbreviations count only with their
# full stop ("Anna Müller geb. Schmidt", "roz.", "rod.", "урожд."): Roz and Rod are given names.
BIRTH_NAME_MARKERS = frozenset(
    {"née", "nee", "geborene", "geborener", "rozená", "rodená", "domu", "урождённая", "урожденная"}
)
BIRTH_NAME_ABBREVIATIONS = frozenset({"geb", "roz", "rod", "урожд"})
# Particles that are also Vietnamese names (Lê, Đỗ, La; Văn, the commonest middle name), and the shape
# of a Vietnamese syllable written without its marks: an initial, one to three vowels, a final.
VIETNAMESE_PARTICLES = frozenset({"le", "do", "la", "van"})
_VIETNAMESE_SYLLABLE = re.compile(
    r"(ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?[aeiouy]{1,3}(ch|ng|nh|[cmnpt])?"
)
# "Mr. & Mrs. John Smith", "Mr and Mrs Smith": a word that joins two titles goes with them.
TITLE_CONNECTORS = frozenset({"&", "+", "and", "und", "et", "y", "e", "og", "en"})
# German-speaking degrees ("Dr. med. Hans Müller", "Dr. rer. nat.", "Prof. Dr. Ing.", "Dipl.-Ing.",
# "Mag."): written with their full stops, and a qualifier counts only right after a degree's title,
# since some are names on their own (Nat King Cole, "Dr. Nat Turner").
DEGREE_TITLES = frozenset({"dr", "prof", "dipl", "mag", "univ", "priv", "doz"})
DEGREE_QUALIFIERS = frozenset(
    {
        *("med", "dent", "vet", "rer", "nat", "phil", "jur", "iur", "theol", "oec", "pol", "pharm", "sc", "ing"),
        *("habil", "soc", "techn", "univ", "mult", "paed", "agr", "doz", "prof", "h.c"),
    }
)
# Japanese and Korean honorifics joined to a name by a hyphen in Latin letters ("Tanaka-san",
# "Sato-sensei", "Kim-ssi"): titles, dropped. Not "shi" (a syllable of Chinese given names, Xiao-shi).
HONORIFIC_SUFFIXES = frozenset({"san", "sama", "kun", "chan", "sensei", "senpai", "sempai", "dono", "ssi", "nim"})
# Qualifiers that are names too (Dent, Nat, Pol, Ing, Phil): right after a degree's title, as the last
# word of a part, they are the name ("Dr. Dent.").
NAMES_AMONG_QUALIFIERS = frozenset({"dent", "nat", "pol", "ing", "phil"})
_ORDINAL_SUFFIX = re.compile(r"\d+(st|nd|rd|th)")  # "John Smith 3rd"
# Regnal and generational numerals up to XXXIX after a name ("Louis XIV", "Henry VIII", "John Paul II"),
# two letters or more; not Vi and Xi, which are Vietnamese and Chinese surnames ("Jinping Xi").
_ROMAN_NUMERAL = re.compile(r"x{0,3}(ix|iv|v?i{0,3})")
NAMES_AMONG_NUMERALS = frozenset({"vi", "xi"})
_SEPARATORS = re.compile(r"[\s\u30fb]+")  # whitespace, and the katakana middle dot of ジョン・スミス
# Quotes and brackets around a word, and the sentence punctuation after it ("Smith.", "(Smith)",
# «Dupont», "Smith;"): not part of the name. An apostrophe stays ('t Hooft, O'). A trailing full
# stop is dropped once titles and initials are told apart (they keep theirs).
LEADING_MARKS = '"“”„‚‘‹›«»([{<'
TRAILING_MARKS = '"“”„‚‹›«»)]}>;:!?'


def without_marks(word: str) -> str:
    """A word without the quotes or brackets around it, its sentence punctuation and one final full
    stop: how the company and placeholder checks compare words ("(Ltd.)" -> "ltd" once case-folded)."""
    return word.lstrip(LEADING_MARKS).rstrip(TRAILING_MARKS).removesuffix(".")


_DOTTED_WORD = re.compile(r"(?<=\.)(?=\w)")  # "J.R.R.Tolkien", "Dr.Smith": a full stop, then a letter
_INITIAL_PIECES = re.compile(r"[.-]")
_ARTICLE_PREFIX = re.compile(r"^(al|el)-(?=\w)", re.IGNORECASE)  # al-Sayed: the article, then the name


def _bare(word: str) -> str:
    """A word as the lists of titles, particles and suffixes hold it: case-folded, no final full stop,
    and in one alphabet where it mixes Latin with Cyrillic or Greek look-alikes ("Dе" with a Cyrillic е
    is the particle de, "Мr." with a Cyrillic М a title), as its reading will be."""
    if word.isascii():
        return word.rstrip(".").casefold()
    return _bare_unicode(word)


@functools.lru_cache(maxsize=8192)
def _bare_unicode(word: str) -> str:
    """`_bare` of a word with a non-ASCII letter: the script count behind the look-alike check cost a
    non-ASCII full name's splitting four times its time, called some 16 times a name (a review's count)."""
    return as_one_alphabet(word, scripts_of(word)).rstrip(".").casefold()


def _is_initial(word: str) -> bool:
    """ "J", "J.", "A.B.", "J.-P.", "А. С." (Cyrillic), "Α." (Greek): single letters of an alphabet, each
    optionally followed by a full stop (a particle such as Ó is not an initial)."""
    if _letter_count(word) > 1 and "." not in word and "-" not in word:  # one piece of two or more characters
        return False
    if _bare(word) in PARTICLES:
        return False
    letters = [char for char in word if char.isalpha()]
    if not letters or any(letter_script(char) not in INITIAL_SCRIPTS for char in letters):
        return False  # 王 or 김 alone is a whole name, not an initial
    pieces = [piece for piece in _INITIAL_PIECES.split(word) if piece]
    return all(_letter_count(piece) == 1 for piece in pieces) and (len(letters) == 1 or "." in word)


def _letter_count(text: str) -> int:
    """Characters other than combining marks: a letter that NFKC cannot compose with its mark is still one
    letter. "i\u0307", the lower case of İ, counted two, so İ was an initial and its lower case a name."""
    if text.isascii():
        return len(text)
    return sum(1 for char in text if not unicodedata.category(char).startswith("M"))


def _is_suffix(word: str) -> bool:
    bare = _bare(word)
    if bare in SUFFIXES or _ORDINAL_SUFFIX.fullmatch(bare) is not None:
        return True
    return len(bare) >= 2 and bare not in NAMES_AMONG_NUMERALS and _ROMAN_NUMERAL.fullmatch(bare) is not None


def _is_birth_name_marker(word: str) -> bool:
    bare = _bare(word)
    return bare in BIRTH_NAME_MARKERS or (word.endswith(".") and bare in BIRTH_NAME_ABBREVIATIONS)


def _split_dotted(word: str) -> list[str]:
    """ "J.R.R.Tolkien" -> J., R., R., Tolkien; "Dr.Smith" -> Dr., Smith; "Dr.med.Müller", "rer.nat.":
    only when every piece before the last is an initial, a title or a particle, or the pieces before it
    are titles or degree qualifiers, so a word with a full stop inside stays whole ("Ma.Teresa")."""
    pieces = _DOTTED_WORD.split(word)
    if len(pieces) > 1 and all(_bare(piece) in TITLES for piece in pieces):  # "Dr.Dr.", "Prof.Dr."
        return pieces
    if (
        len(pieces) > 1
        and not _is_noise(pieces[-1])
        and (
            all(_is_noise(piece) or _bare(piece) in PARTICLES for piece in pieces[:-1])
            or _title_run(pieces[:-1], ends_part=False) == len(pieces) - 1  # "Dr.med.Müller", "Dr.rer.nat.Müller"
            or all(_bare(piece) in DEGREE_QUALIFIERS for piece in pieces[:-1])  # "med.Müller" after "Dr."
        )
    ):
        return pieces
    return [word]


def _words(part: str) -> list[str]:
    """The words of one comma-separated part, with quotes, brackets and trailing punctuation off; a word
    that is nothing but those marks is dropped ("&" is none of them: it may join two titles)."""
    words = []
    raws = [raw.lstrip(LEADING_MARKS).rstrip(TRAILING_MARKS) for raw in _SEPARATORS.split(part)]
    if raws:  # an honorific follows the name: only the part's last word has one ("García-San Martín")
        raws[-1] = _without_honorific(raws[-1])
    for raw in raws:
        for piece in _split_dotted(raw):
            if piece:
                words.append(piece)
    return words


def _without_honorific(word: str) -> str:
    """ "Tanaka-san" -> "Tanaka": a hyphenated Japanese or Korean honorific after a name is a title, but
    not the syllable of a Korean given name (Young-chan, Jae-san: 찬, 산)."""
    name, hyphen, suffix = word.rpartition("-")
    if not (hyphen and name and suffix.casefold() in HONORIFIC_SUFFIXES):
        return word
    korean_syllable = suffix.casefold() in {"chan", "san"} and is_hyphenated_korean_given_name(normalize(word))
    return word if korean_syllable else name


def _part_tokens(words: list[str]) -> tuple[list[str], list[str]]:
    """The name tokens of one comma-separated part: titles, suffixes and initials out, particles joined
    (without a trailing full stop: "St. John" is read as "St John"); and the particles left at its end
    with no word after them ("Anna van der" of "Berg, Anna van der")."""
    words = [part for word in words for part in (_ARTICLE_PREFIX.sub(r"\1 ", word).split(" "))]
    words = words[min(_title_run(words), len(words) - 1) :]  # a part of titles alone keeps its last word
    while len(words) > 1 and _is_suffix(words[-1]):
        words = words[:-1]
    kept = [word for word in words if not _is_initial(word)] or words
    kept = [word for word in kept[:-1] if not _is_birth_name_marker(word)] + kept[-1:]
    leading_name = _leading_particle_is_a_name(kept)
    tokens: list[str] = []
    pending: list[str] = []  # particles waiting for the word they belong to
    for word in kept:
        if _bare(word) in PARTICLES and not leading_name:
            pending.append(word.rstrip("."))
            continue
        tokens.append(" ".join([*pending, word if _is_noise(word) else word.rstrip(".") or word]))
        pending = []
    return tokens, pending


def _leading_particle_is_a_name(words: list[str]) -> bool:
    """Whether the part is a Vietnamese name whose first word is also a particle: Le, Do, La or Van
    before two or more words that are all Vietnamese syllables. Its words are then names, none a
    particle: "Le Van Thanh" is Le + Van + Thanh, as "Lê Văn Thành" is. "Le Pen", "Le Blanc Jean" and
    "Van Gogh Vincent" (Blanc, Jean, Gogh are no Vietnamese syllables) keep their particle."""
    if len(words) < 3 or _bare(words[0]) not in VIETNAMESE_PARTICLES:
        return False
    return all(_VIETNAMESE_SYLLABLE.fullmatch(normalize(_bare(word))) for word in words[1:])  # Văn, Đức: van, duc


def split_full_name(text: str) -> tuple[tuple[str, ...], int, bool]:
    """The name tokens of a cleaned name in the order written (one token for a single surname), how
    many of them come before a comma ("Surname, Given": the surnames), 0 when there is none, and
    whether the name is nothing but titles, suffixes and initials ("Mr.", "J.").

    A part that is only a title, suffix or initial ("Smith, Jr.") is dropped when another part
    remains; a name that is nothing else is kept whole, so it is still read. Particles left at the end
    of the given names belong to the surname before the comma ("Berg, Anna van der" is Anna van der
    Berg); with no comma they are a token of their own.
    """
    if text.isalpha():  # one word of letters, most names: nothing to split, strip or join
        return (text,), 0, _is_noise(text)
    return _split_words(text)


def _split_words(text: str) -> tuple[tuple[str, ...], int, bool]:
    """`split_full_name` for any text (it takes this path for all but a single word of letters)."""
    parts = [words for part in text.split(",") if (words := _words(part))]
    noise = [_only_noise(words) for words in parts]
    split = [
        _part_tokens(words) for words, only_noise in zip(parts, noise, strict=True) if len(parts) == 1 or not only_noise
    ]
    kept = [part_tokens for part_tokens, _ in split]
    for index, (_, particles) in enumerate(split):
        if not particles:
            continue
        if index > 0 and kept[0]:
            kept[0][-1] = " ".join([*particles, kept[0][-1]])
        else:
            kept[index].append(" ".join(particles))
    tokens = tuple(token for part in kept for token in part)
    only_titles = bool(parts) and all(noise)
    if not tokens:
        return tuple(w for words in parts for w in words), 0, only_titles
    return tokens, len(kept[0]) if len(kept) > 1 else 0, only_titles


def _title_run(words: list[str], ends_part: bool = True) -> int:
    """How many of the words, from the first, are titles: "Mr.", "Prof. Dr.", "Dr. med.", "Mr. & Mrs.",
    "Mag. und Dipl.-Ing.". ends_part: the words end their part, so a qualifier that is also a name and
    comes last, right after a degree's title, is the name ("Dr. Dent." is Dr. Dent; "Dr. med. dent."
    is a degree)."""
    count, after_degree = 0, False  # whether the word before was a degree's title or qualifier
    while count < len(words):
        head = _bare(words[count])
        following = words[count + 1] if count + 1 < len(words) else None
        after_title = count > 0 and _bare(words[count - 1]) in DEGREE_TITLES
        degree = _is_degree(words[count], after_degree) and not (
            ends_part and following is None and after_title and head in NAMES_AMONG_QUALIFIERS
        )
        joins_titles = (
            head in TITLE_CONNECTORS
            and following is not None
            and (_bare(following) in TITLES or _is_degree(following, False))
        )
        if not (degree or head in TITLES or joins_titles):
            break
        after_degree = degree or head in DEGREE_TITLES
        count += 1
    return count


def _only_noise(words: list[str]) -> bool:
    """Whether a part is nothing but titles, suffixes and initials ("Mr.", "Jr.", "Dr. med.", "J.")."""
    return all(_is_noise(word) for word in words[_title_run(words) :])


def _is_degree(word: str, after_degree: bool) -> bool:
    """A degree's abbreviation with its full stop: "Dipl.", "Mag.", "Dr.-Ing.", "Dipl.-Ing.", and a
    qualifier ("med.", "rer.", "nat.") right after a degree's title or another qualifier."""
    if not word.endswith("."):
        return False
    pieces = [_bare(piece) for piece in word.split("-")]
    if len(pieces) > 1:  # "Dr.-Ing.", "Univ.-Prof.", "Priv.-Doz.", and every "Dipl.-X." (Kfm., Inf., Psych.)
        return pieces[0] == "dipl" or (
            pieces[0] in DEGREE_TITLES and all(piece in DEGREE_QUALIFIERS for piece in pieces[1:])
        )
    return pieces[0] in DEGREE_TITLES or (after_degree and pieces[0] in DEGREE_QUALIFIERS)


def _is_noise(word: str) -> bool:
    return _bare(word) in TITLES or _is_suffix(word) or _is_initial(word)
