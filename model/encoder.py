"""The character encoder: one `normalize()` for training and serving, and the name -> index mapping.

Names are folded to lower-case Latin with `unidecode` (the readers in `model.readers` come first
for the scripts it reads wrongly), then mapped onto a fixed alphabet with explicit padding and
unknown ids; the network one-hot encodes those ids. Lower case everywhere means "SMITH", "smith"
and "Smith" are the same input, exactly.
"""

from __future__ import annotations

import functools
import itertools
import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from unidecode import unidecode

PAD_ID = 0
UNKNOWN_ID = 1
DEFAULT_ALPHABET = string.ascii_lowercase + " .,;'-"
DEFAULT_MAX_LENGTH = 64
ENCODE_CACHE_SIZE = 65_536
_WHITESPACE = re.compile(r"\s+")
# Variation selectors choose a glyph (辻 with U+E0101 is how the surname Tsuji is often written); they
# are not letters, and pykakasi cannot read past them.
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# Format characters (Unicode category Cf, as of Unicode 14, Python 3.11's): zero-width spaces and
# joiners, direction marks, the soft hyphen, the byte order mark. Invisible and not letters, they
# come with names pasted from web pages and documents; "김민준" with a zero-width space after it read
# "gimminjun" instead of "kim minjun". A test checks this class against the interpreter's own table.
_FORMAT_CHARACTERS = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
# Stand-ins people type for an apostrophe or a hyphen: the acute accent (´, which NFKC would turn into
# a space and a combining accent: "O´Brien" read as the initial O and "Brien"), the grave accent,
# the Hawaiian okina, the em dash, the horizontal bar and the minus sign (a symbol, so read as a space:
# "Smith\u2212Jones" was two names).
# The Hangul fillers are invisible too, but letters (Lo), so not in the class above: one after a name
# made it Hangul, and Korean ("Smith\u3164" Korean 0.995, English 0.992 without it). Dropped in the
# look-alikes' pass.
_LOOKALIKES = str.maketrans("\u00b4`\u02bb\u2014\u2015\u2212", "'''---", "\u115f\u1160\u3164\uffa0")


class NameEncodingError(ValueError):
    """A name that cannot be turned into model input; the message says why."""


def clean_text(raw_name: str) -> str:
    """NFKC + collapse whitespace + trim, variation selectors, format characters and symbols dropped, apostrophe and dash look-alikes made the plain ones: the form names are stored,
    deduplicated and shown in."""
    if _already_clean_ascii(raw_name):  # most names, and each is cleaned several times on its way in
        return raw_name
    visible = _FORMAT_CHARACTERS.sub("", raw_name.translate(_LOOKALIKES))
    # before NFKC for the signs it would spell out, after it for the symbols it leaves (½ -> "1⁄2")
    text = _without_symbols(unicodedata.normalize("NFKC", _without_symbols(visible)))
    return _WHITESPACE.sub(" ", _VARIATION_SELECTORS.sub("", text)).strip()


class _SymbolsAsSpaces(dict[int, int]):
    """A str.translate table, filled as characters are met, for the text before NFKC: a non-ASCII symbol
    (Unicode category S) to a space, unless NFKC makes it something with fewer than two letters (Ⓐ -> A,
    a decorative font; ＄ -> $; ℃ -> °C, whose ° goes in the pass after NFKC); any other character to itself. So a sign NFKC would spell out as a word or an
    abbreviation goes too (™ -> "TM", № -> "No", ㎏ -> "kg", ㌔ -> "キロ": "Smith™" was read as
    "smithtm", English 0.75 where Smith is 0.99). Derived from the interpreter's Unicode table, not
    kept by hand; a character seen before costs a lookup in C, not a call."""

    def __missing__(self, code: int) -> int:
        value = SPACE if _is_dropped_symbol(chr(code)) else code
        self[code] = value
        return value


def _is_dropped_symbol(char: str) -> bool:
    if not _is_symbol(char):
        return False
    spelt = unicodedata.normalize("NFKC", char)
    return spelt == char or sum(map(str.isalpha, spelt)) >= 2


def _is_symbol(char: str) -> bool:
    return not char.isascii() and unicodedata.category(char)[0] == "S"


SPACE = ord(" ")
_SYMBOLS_AS_SPACES = _SymbolsAsSpaces()


def _without_symbols(text: str) -> str:
    """`text` with its non-ASCII symbols (©, ®, €, °, emoji, ™; `_SymbolsAsSpaces`) made spaces. Never part
    of a name, yet unidecode spells some in letters ("Müller®" read as "muller(r)", then judged no
    name). ASCII's own symbols ($, +, ^) stay as they were: clean_text's ASCII shortcut keeps them."""
    if text.isascii():
        return text
    return text.translate(_SYMBOLS_AS_SPACES)


def _already_clean_ascii(text: str) -> bool:
    """Whether clean_text would return `text` unchanged, told without its four passes: printable ASCII
    (NFKC's identity, no format character or variation selector, no whitespace but the space) with no
    grave accent to make an apostrophe, no run of spaces and none at either end."""
    return (
        text.isascii()
        and text.isprintable()
        and "`" not in text
        and "  " not in text
        and text[:1] != " "
        and text[-1:] != " "
    )


def visible_length(raw_name: str) -> int:
    """How many characters a name has as it is read: `clean_text`'s form (NFKC: composed, compatibility
    characters spelt out; format characters and symbols dropped, whitespace collapsed and trimmed).
    "Nguyễn" decomposed (NFD, as macOS file names and some forms send it) is 9 code points but 6
    characters; the ligature ﷺ is one code point but 18 letters in four words. Limits on a name's
    length count these: counting code points let 64 of them through as 1,152 letters to read."""
    return len(clean_text(raw_name))


def name_key(raw_name: str) -> str:
    """The identity of a name for deduplication and the split: NFKC + casefold + trim."""
    return unicodedata.normalize("NFKC", raw_name).casefold().strip()


def normalize(raw_name: str) -> str:
    """Fold a name to the lower-case Latin text the network reads.

    Transliteration can add spaces (unidecode('王') == 'Wang '), so whitespace is collapsed after
    folding as well as before. Case is folded before transliteration, because unidecode spells some
    case pairs apart (Ʒ "Zh" but ʒ "z", Ξ "Ks" but ξ "x", Ɑ nothing but ɑ "a": "Ʒukov" and "ʒukov" were two
    names), and again after it, on the ASCII it produced.
    """
    return clean_text(unidecode(clean_text(raw_name).lower())).lower()


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild the encoder; saved in every checkpoint."""

    alphabet: str = DEFAULT_ALPHABET
    max_length: int = DEFAULT_MAX_LENGTH

    def __post_init__(self) -> None:
        if not self.alphabet or not (isinstance(self.max_length, int) and self.max_length >= 1):
            raise ValueError(f"encoder needs an alphabet and a positive integer max_length, got {self}")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"encoder alphabet has repeated symbols: {self.alphabet!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NameEncoder:
    """Maps normalized names to index sequences over `alphabet` (ids 0 and 1 are pad and unknown)."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()  # a config checks its alphabet itself
        self._char_ids = {char: index + 2 for index, char in enumerate(self.config.alphabet)}
        # A service and a batch job see the same names again and again, in call after call: the
        # cache makes a repeat a lookup. Bounded, in memory only, never logged.
        self._encode_cached = functools.lru_cache(maxsize=ENCODE_CACHE_SIZE)(self._encode_uncached)

    def clear_cache(self) -> None:
        """Forget every encoded name."""
        self._encode_cached.cache_clear()

    @property
    def vocab_size(self) -> int:
        return len(self.config.alphabet) + 2

    def encode(self, raw_name: str) -> tuple[int, ...]:
        """Return the index sequence of one name, or raise NameEncodingError saying what is wrong."""
        if not isinstance(raw_name, str):
            raise NameEncodingError(f"name must be a string, got {type(raw_name).__name__}")
        return self._encode_cached(raw_name)

    def encode_readings(self, readings: list[str]) -> list[tuple[int, ...]]:
        """`encode` of each of the reader's readings, which are strings already: no check per name,
        which cost a third of encoding 1000 cached names."""
        return list(map(self._encode_cached, readings))

    def _encode_uncached(self, raw_name: str) -> tuple[int, ...]:
        folded = normalize(raw_name)
        if not any(map(str.isalpha, folded)):
            raise NameEncodingError(f"name has no letters after transliteration to Latin (got {folded!r})")
        if len(folded) > self.config.max_length:
            raise NameEncodingError(
                f"name is {len(folded)} characters after transliteration; "
                f"the model reads at most {self.config.max_length}"
            )
        return tuple(map(self._char_ids.get, folded, itertools.repeat(UNKNOWN_ID, len(folded))))

    def encode_batch(self, raw_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode names into a right-padded (B, T) id tensor and a (B,) length tensor."""
        if not raw_names:
            raise NameEncodingError("cannot encode an empty list of names")
        return pad_sequences([self.encode(name) for name in raw_names])


def pad_sequences(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences with PAD_ID into a (B, T) tensor plus their lengths (one vectorized
    fill). Built in numpy, which reads Python ints about three times faster than torch.tensor does,
    and handed to torch without a copy."""
    count = len(sequences)
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=count)
    flat_ids = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    ids = np.full((count, int(lengths.max())), PAD_ID, dtype=np.int64)
    ids[np.arange(ids.shape[1]) < lengths[:, None]] = flat_ids  # (B, T) mask, row-major = input order
    return torch.from_numpy(ids), torch.from_numpy(lengths)
