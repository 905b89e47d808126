"""Reading a name as written into what the network and the evidence need: tokens, scripts, readings.

One place turns a raw name into its parts: the full name split into tokens (`model.fullname`), each
token's scripts, distinctive letters and marker words (`model.scripts`, `model.evidence`), the Latin
text the network reads (Japanese, Korean, Greek and Arabic by their own readers, everything else by
`normalize`), the per-label readings where a script is read differently by different labels (Han:
Mandarin for Chinese, Japanese for Japanese; three Han characters that begin with a common Chinese
surname, the usual Chinese full name, are read by Chinese as a surname and a given name), and why a
token cannot be read at all. Readings are cached: a name is read once per process.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import unicodedata
from typing import NamedTuple

from model.arabic_reader import read_arabic
from model.chinese_surnames import COMMON_CHINESE_SURNAMES
from model.encoder import clean_text, normalize
from model.evidence import (
    EAST_ASIAN_GIVEN_NAME,
    HAN_FEATURE,
    KOREAN_GIVEN_NAME,
    LETTER_FEATURE,
    SCRIPT_FEATURE,
    SYLLABLES_FEATURE,
    WORD_FEATURE,
    Evidence,
)
from model.fullname import split_full_name
from model.greek_reader import read_greek
from model.organizations import names_an_organization
from model.placeholders import fills_no_name
from model.readers import is_hyphenated_korean_given_name, japanese_first_word, read_japanese, read_korean
from model.scripts import (
    ARABIC,
    GREEK,
    HAN,
    HANGUL,
    JAPANESE_SCRIPTS,
    LATIN,
    as_one_alphabet,
    distinctive_letters,
    evidence_scripts,
    fold_case,
    han_countries,
    script_label,
    scripts_of,
)

logger = logging.getLogger(__name__)

READING_CACHE_SIZE = 65_536
JAPANESE = "Japanese"
CHINESE = "Chinese"
# A Chinese name is most often three characters, a one-character surname and a two-character given name
# (王小明), written without a space; a Japanese surname is most often two (田中), a full name four.
CHINESE_FULL_NAME_LENGTH = 3
# Tab, line feed and carriage return are ordinary whitespace (clean_text makes them one space); any
# other control character (NUL, the rest of C0, DEL, C1) in a name is an accident or an attack, and
# the name abstains with "control-characters" rather than being read with it or without it.
WHITESPACE_CONTROLS = frozenset("\t\n\r")
MAX_NAME_CHARACTERS = 256  # a whole name, cleaned (model.encoder.clean_text), longer than this is too long
_WORD_SEPARATORS = re.compile(r"[\s\-']+")  # within a reading: "abd al-rahman", "o'brien"
MIN_JUDGED_LETTERS = 3  # two letters are too few to call a string a non-name (Ng, Wu, Xu, Li are names)
# When no part of a name is answered (all unreadable, or the readable ones no names), the reason it
# abstains with: the most telling first.
REASON_PRECEDENCE = (
    "control-characters",
    "unsupported-script",
    "unsupported-letters",
    "too-long",
    "not-a-name",
    "no-letters",
)


class TokenReading(NamedTuple):
    """One token of a name, read."""

    text: str  # as written (cleaned)
    read_as: str  # the lower-case Latin text the network reads; "" when it has none
    script: str  # "Latin", "Han+Hiragana", ...; "" when the token has no letters
    features: tuple[str, ...]  # evidence: "script:Hangul", "letter:ł", "han:Japanese"
    # (label, readings) for labels that read the token otherwise: the label's log-likelihood is the mean
    # of its readings' (one reading, or a Chinese surname and given name read apart)
    alternatives: tuple[tuple[str, tuple[str, ...]], ...]
    reason: str | None  # why the token cannot be classified: no-letters, unsupported-script, ...
    judged: bool  # Latin letters only, at least MIN_JUDGED_LETTERS of them: the not-a-name check applies


class NameReading(NamedTuple):
    """A whole name, read: its tokens in order, and whether it is a placeholder such as "N/A"."""

    text: str  # cleaned
    tokens: tuple[TokenReading, ...]
    placeholder: bool
    surnames_before_comma: int  # "Surname, Given": how many tokens precede the comma; 0 without one
    read_as: str  # what the network reads, its readable tokens joined by spaces
    script: str  # every script of its tokens, most used first: "Latin", "Han+Hiragana"
    plain: bool  # one readable token with no evidence, no other reading, no placeholder: most names

    @classmethod
    def of(
        cls, text: str, tokens: tuple[TokenReading, ...], placeholder: bool, surnames_before_comma: int
    ) -> NameReading:
        scripts: list[str] = []
        for token in tokens:
            scripts += [script for script in token.script.split("+") if script and script not in scripts]
        read_as = " ".join(token.read_as for token in tokens if token.reason is None)
        plain = (
            len(tokens) == 1
            and tokens[0].reason is None
            and not tokens[0].features
            and not tokens[0].alternatives
            and not placeholder
        )
        return cls(text, tokens, placeholder, surnames_before_comma, read_as, "+".join(scripts), plain)


class NameReader:
    """Reads names for one checkpoint: its evidence table, its longest reading, its placeholders."""

    def __init__(self, evidence: Evidence, max_length: int, placeholders: tuple[str, ...]) -> None:
        self.evidence = evidence
        self.max_length = max_length
        self.placeholders = frozenset(placeholders)
        self.read = functools.lru_cache(maxsize=READING_CACHE_SIZE)(self._read_uncached)

    def _read_uncached(self, raw_name: str) -> NameReading:
        if has_control_characters(raw_name):
            token = TokenReading(raw_name, "", "", (), (), "control-characters", False)
            return NameReading.of(raw_name, (token,), False, 0)
        text = clean_text(raw_name)
        if len(text) > MAX_NAME_CHARACTERS:
            # Read whole, no name is this long; and a short string can spell out to one (ﷺ is 18 letters
            # in NFKC: 64 of them were 256 parts whose explanation took 12 s, each cached reading 30 KB).
            token = TokenReading(
                text[:MAX_NAME_CHARACTERS], "", script_label(scripts_of(text)), (), (), "too-long", False
            )
            return NameReading.of(text, (token,), False, 0)
        token_texts, surnames_before_comma, only_titles = split_full_name(text) if text else ((), 0, False)
        tokens = tuple(self.read_token(token) for token in token_texts)
        # A placeholder ("N/A", "Test User", "#N/A"; model.placeholders) is no name, nor is "Mr." or "J." alone,
        # nor "Acme Ltd", a company's (also when spelt with look-alike letters: "n/а", "tеst" with a Cyrillic а, е).
        unified = (
            text if text.isascii() else " ".join(as_one_alphabet(word, scripts_of(word)) for word in text.split(" "))
        )
        placeholder = fills_no_name(unified, self.placeholders) or only_titles or names_an_organization(unified)
        return NameReading.of(text, tokens, placeholder, surnames_before_comma)

    def read_token(self, token: str) -> TokenReading:
        scripts = scripts_of(token)
        if not scripts:
            return TokenReading(token, "", "", (), (), "no-letters", False)
        script = script_label(scripts)
        if any(not self.evidence.supported_script(name) for name in scripts):
            return TokenReading(token, "", script, (), (), "unsupported-script", False)
        # A word of one alphabet with look-alikes of another in it is read as the word it looks like; its
        # `script` still says what it holds.
        unified = as_one_alphabet(token, scripts)
        read_scripts = scripts if unified is token else scripts_of(unified)
        read_as, alternatives = self._readings(unified, read_scripts)
        telling_scripts = evidence_scripts(read_scripts)
        features = (
            tuple(SCRIPT_FEATURE + name for name in telling_scripts if name != LATIN)
            + tuple(LETTER_FEATURE + letter for letter in distinctive_letters(unified))
            + tuple(HAN_FEATURE + country for country in (han_countries(token) if HAN in scripts else ()))
            + (self._marker_words(read_as) + self._word_shapes(read_as) if telling_scripts == (LATIN,) else ())
        )
        reason = None
        if self.evidence.unsupported_letters(features):
            reason = "unsupported-letters"
        elif any(map(str.isdigit, token)):
            # Letters and digits in one part (R2D2, A-12, Smith2): no label writes a digit in a name (the
            # data's three, such as Urbanek1, are slips). The character model would not judge R2D2 (two
            # letters) and lets Smith2 pass on its letters, and the network reads a digit as an unknown
            # symbol. The part is left out, as a part with no letters is.
            reason = "not-a-name"
        elif not _has_letters(read_as):
            reason = "no-letters"
        elif len(read_as) > self.max_length or any(
            len(reading) > self.max_length for _, readings in alternatives for reading in readings
        ):
            reason = "too-long"
        # A particle-joined token ("st. john", "al sayed") is a known particle and a word, and a word of a
        # known shape (Ji-eun) a known kind of name: neither is judged.
        judged = (
            telling_scripts == (LATIN,)
            and " " not in token
            and sum(map(str.isalpha, read_as)) >= MIN_JUDGED_LETTERS
            and not any(feature.startswith(SYLLABLES_FEATURE) for feature in features)
        )
        return TokenReading(token, read_as, script, features, alternatives, reason, judged)

    def _marker_words(self, read_as: str) -> tuple[str, ...]:
        """The words of a Latin reading, and the two-word chains followed by another word, that the
        evidence table says mark a naming tradition (each once). A chain marks a surname only before
        it: "van den berg" is Dutch, "Van Den" alone the Vietnamese Văn Đến."""
        table = self.evidence.table.words
        words = _WORD_SEPARATORS.split(read_as)
        chains = [f"{first} {second}" for first, second in itertools.pairwise(words[:-1])]
        return tuple(sorted({WORD_FEATURE + word for word in (*words, *chains) if word in table}))

    def _word_shapes(self, read_as: str) -> tuple[str, ...]:
        """The shapes of a Latin reading that the evidence table says mark a naming tradition."""
        if not is_hyphenated_korean_given_name(read_as):
            return ()
        shapes = (EAST_ASIAN_GIVEN_NAME, KOREAN_GIVEN_NAME)
        return tuple(SYLLABLES_FEATURE + shape for shape in shapes if shape in self.evidence.table.syllables)

    def _readings(self, token: str, scripts: tuple[str, ...]) -> tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]:
        """The reading every label uses, and the labels that read this token their own way. A
        Japanese reading with no letters (pykakasi leaves out what it cannot read: -亿 -> "-") is no
        reading: kana fall back to unidecode, and Han keeps only its Mandarin reading.

        Three Han characters that begin with a common Chinese surname are read by Chinese as what they
        most often are, a surname and a given name ("wang" and "xiao ming" for 王小明), the mean of the
        two readings' log-likelihoods its own: the network learnt surnames, and read as one ("wang xiao
        ming") the whole went to Japanese (0.89). A mean, not a sum, so that the name weighs as one
        reading against Japanese's one. Only after a common surname, because read this way any three
        characters look Chinese, and Japanese names of three (長谷川, 佐藤健) went to Chinese under the
        uniform prior; two characters (李明, or the Japanese surname 田中) are read whole
        (README.md, "Names in Han characters")."""
        if JAPANESE_SCRIPTS & set(scripts):
            japanese = _read_japanese_or_blank(token)
            return (japanese if _has_letters(japanese) else normalize(token)), ()
        if HANGUL in scripts:
            return normalize(read_korean(token)), ()
        if GREEK in scripts:
            return normalize(read_greek(token)), ()
        if ARABIC in scripts:
            return normalize(read_arabic(token)), ()
        read_as = normalize(token)
        if HAN not in scripts:
            return read_as, ()
        labels = self.evidence.labels
        alternatives: list[tuple[str, tuple[str, ...]]] = []
        japanese = _read_japanese_or_blank(token)
        if JAPANESE in labels and _has_letters(japanese) and japanese != read_as:
            alternatives.append((JAPANESE, (japanese,)))
        parts = chinese_full_name_parts(token) if CHINESE in labels else None
        if parts is not None:
            alternatives.append((CHINESE, parts))
        return read_as, tuple(alternatives)


def has_control_characters(raw_name: str) -> bool:
    """Whether the name holds a control character other than tab, line feed or carriage return."""
    return any(unicodedata.category(char) == "Cc" and char not in WHITESPACE_CONTROLS for char in raw_name)


def chinese_full_name_parts(token: str) -> tuple[str, str] | None:
    """A Chinese full name's surname and given name, read, for a token of CHINESE_FULL_NAME_LENGTH
    ideographs that begins with a common Chinese surname (model.chinese_surnames); None for any other
    token, for one with a character of the Japanese sets only (沢, 畑) or Japanese's iteration mark
    (々 is no ideograph), for one whose first two characters or more are a word of pykakasi's
    dictionary (高倉健, 田中圭: a Japanese surname and a one-character given name), and for one with a
    character unidecode cannot read (王𠀀明: the Extension B character reads as nothing)."""
    if len(token) != CHINESE_FULL_NAME_LENGTH or token[0] not in COMMON_CHINESE_SURNAMES:
        return None
    if not all(_is_unified_ideograph(char) and _has_letters(normalize(char)) for char in token):
        return None
    if JAPANESE in han_countries(token) or len(_japanese_first_word_or_blank(token)) > 1:
        return None
    return normalize(token[0]), normalize(token[1:])


def _is_unified_ideograph(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK UNIFIED IDEOGRAPH")


def _has_letters(text: str) -> bool:
    return any(map(str.isalpha, text))


def _japanese_first_word_or_blank(token: str) -> str:
    """pykakasi's first word of the token (model.readers.japanese_first_word), or "" where it fails."""
    try:
        return japanese_first_word(token)
    except (IndexError, KeyError, ValueError):
        return ""


def _read_japanese_or_blank(token: str) -> str:
    """pykakasi's reading, or "" when it fails on input it was not built for (it has raised IndexError
    on a stray combining mark): the caller then reads the token another way."""
    try:
        return normalize(read_japanese(token))
    except (IndexError, KeyError, ValueError):
        logger.debug("pykakasi could not read a token; reading it with unidecode")
        return ""


def reading_key(raw_name: str) -> str:
    """Names with the same key are read alike and get the same answer: the cleaned text folded the
    way the reader folds its letters (`model.scripts.fold_case`). What batch/ deduplicates on."""
    return "".join(map(fold_case, clean_text(raw_name)))
