"""Which writing systems a name is written in, and which of its letters carry evidence of origin.

Both are read from the Unicode character database: a letter's name starts with its script
("CYRILLIC SMALL LETTER ZHE", "HANGUL SYLLABLE GIM", "CJK UNIFIED IDEOGRAPH-7530"), and a Han
character's membership of the national character sets (GB 2312 and Big5 in China and Taiwan,
JIS X 0208 in Japan) says which country's writing it can belong to. Folding to Latin throws both
away, so they are taken from the name as written, before it is read.
"""

from __future__ import annotations

import functools
import unicodedata
from collections import Counter

LATIN = "Latin"
HAN = "Han"
HIRAGANA = "Hiragana"
KATAKANA = "Katakana"
HANGUL = "Hangul"
GREEK = "Greek"
ARABIC = "Arabic"
# Scripts whose names do not start with the script's own name.
_SCRIPT_OF_NAME_PREFIX = {
    "CJK": HAN,
    "IDEOGRAPHIC": HAN,  # 々, the iteration mark of 佐々木
    "KATAKANA-HIRAGANA": KATAKANA,  # ー, the long-vowel mark
}
_NOT_A_SCRIPT = {"MODIFIER", "COMBINING", "FULLWIDTH", "HALFWIDTH", "SMALL"}  # Common or inherited letters
JAPANESE_SCRIPTS = frozenset({HIRAGANA, KATAKANA})
CYRILLIC = "Cyrillic"
# Alphabets whose letters include look-alikes of Latin ones (а е о р с х і, Α Β Ε Η Ι Κ Μ Ν Ο Ρ Τ Χ).
LATIN_LOOKALIKES = frozenset({CYRILLIC, GREEK})
SCRIPT_JOINER = "+"


@functools.lru_cache(maxsize=8192)
def letter_script(char: str) -> str | None:
    """The script of one letter ("Latin", "Cyrillic", "Han", ...), or None for anything else."""
    if not unicodedata.category(char).startswith("L"):
        return None
    first_word = unicodedata.name(char, "").split(" ", 1)[0]
    if first_word in _SCRIPT_OF_NAME_PREFIX:
        return _SCRIPT_OF_NAME_PREFIX[first_word]
    if not first_word or first_word in _NOT_A_SCRIPT:
        return None
    return first_word.capitalize()


def scripts_of(text: str) -> tuple[str, ...]:
    """Every script the text's letters are written in, the most used first (ties: first seen)."""
    if text.isascii():  # most names: the only ASCII letters are Latin ones
        return (LATIN,) if any(map(str.isalpha, text)) else ()
    counts = Counter(script for char in text if (script := letter_script(char)) is not None)
    return tuple(script for script, _ in counts.most_common())


def evidence_scripts(scripts: tuple[str, ...]) -> tuple[str, ...]:
    """The scripts (most used first, as `scripts_of` gives them) whose use says something about a word's
    label. A word that mixes Latin with Cyrillic or Greek letters is one alphabet with a few look-alikes
    of the other in it (a keyboard switched mid-word, text pasted from another source, or a spoofed
    name: "Smіth" with a Cyrillic і), so only the alphabet most of its letters are in counts; other
    mixes (Han with kana) are how names are written, and every script counts."""
    if LATIN not in scripts or LATIN_LOOKALIKES.isdisjoint(scripts):
        return scripts
    alphabets = {LATIN, *LATIN_LOOKALIKES}
    return tuple(script for script in scripts if script == scripts[0] or script not in alphabets)


# Case-folded letters that look like a Latin letter, by alphabet (the common ones of Unicode's
# confusables; a lower-case letter stands for its capital too, as Н for H and ν for Ν).
LATIN_LOOKALIKE_LETTERS = {
    CYRILLIC: {
        "а": "a", "в": "b", "с": "c", "е": "e", "н": "h", "і": "i", "ј": "j", "к": "k",
        "м": "m", "о": "o", "р": "p", "ѕ": "s", "т": "t", "х": "x", "у": "y",
    },
    GREEK: {
        "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "h", "ι": "i", "κ": "k",
        "μ": "m", "ν": "n", "ο": "o", "ρ": "p", "τ": "t", "υ": "y", "χ": "x",
    },
}  # fmt: skip


def as_one_alphabet(word: str, scripts: tuple[str, ...]) -> str:
    """A word of Latin and Cyrillic (or Greek) letters in the alphabet it is written in, the other's
    look-alikes replaced and the word case-folded: "Smіth" with a Cyrillic і is "smith", "Пeтpов" with
    a Latin e and p is "петров". Any other word is returned as it is.

    The alphabet is the one with more letters that have no look-alike in the other (R in "ΜΑRΙΑ"),
    then the one with more letters; a tie leaves the word as it is. Decided on the case-folded word,
    so the same word in any case is read one way."""
    if len(scripts) != 2 or LATIN not in scripts or LATIN_LOOKALIKES.isdisjoint(scripts):
        return word
    other = scripts[1] if scripts[0] == LATIN else scripts[0]
    to_latin = LATIN_LOOKALIKE_LETTERS[other]
    from_latin = {latin: letter for letter, latin in to_latin.items()}
    folded = "".join(map(fold_case, word))
    latin = [char for char in folded if letter_script(char) == LATIN]
    others = [char for char in folded if letter_script(char) == other]
    latin_weight = (sum(char not in from_latin for char in latin), len(latin))
    other_weight = (sum(char not in to_latin for char in others), len(others))
    if latin_weight == other_weight:
        return word
    table = to_latin if latin_weight > other_weight else from_latin
    return "".join(table.get(char, char) for char in folded)


def script_label(scripts: tuple[str, ...]) -> str:
    """How an answer names the scripts: "Latin", "Han+Hiragana"; "" when the text has no letters."""
    return SCRIPT_JOINER.join(scripts)


def fold_case(char: str) -> str:
    """The lower case of a character where that is one character: lower-casing keeps ß (casefold
    would turn it into "ss"); a capital whose lower case is two characters (İ) stays as it is."""
    lower = char.lower()
    return lower if len(lower) == 1 else char


def distinctive_letters(text: str) -> tuple[str, ...]:
    """The case-folded non-ASCII Latin letters of a text, each once, sorted: ł, ř, ñ, ß, ễ, ı, ..."""
    return tuple(sorted({fold_case(char) for char in text if not char.isascii() and letter_script(char) == LATIN}))


def _encodable(char: str, codec: str) -> bool:
    try:
        char.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=8192)
def han_country(char: str) -> str | None:
    """ "Chinese" for a Han character in GB 2312 or Big5 but not in JIS X 0208 (a simplified form such
    as 刘 or 张), "Japanese" for one in JIS X 0208 but in neither Chinese set (a Japanese form such
    as 沢 or 辺, or a kokuji such as 畑); None for the many characters all three share (田, 王)."""
    chinese = _encodable(char, "gb2312") or _encodable(char, "big5")
    japanese = _encodable(char, "shift_jis")
    if chinese and not japanese:
        return "Chinese"
    if japanese and not chinese:
        return "Japanese"
    return None


def han_countries(text: str) -> tuple[str, ...]:
    """The countries (as above) whose writing some Han character of the text belongs to only."""
    return tuple(sorted({country for char in text if letter_script(char) == HAN and (country := han_country(char))}))
