"""Greek names in the romanization Greeks write them in: ELOT 743 (ISO 843 type 1), the passport standard.

unidecode reads Greek letter by letter with classical values (Αβραμίδης -> "Abramides", Γεωργίου ->
"Georgiou", Χατζηδάκης -> "Khatzedakes"), where a Greek passport, and the training data, write
Avramidis and Chatzidakis: β is v, η and ι are i, γγ is ng, αυ/ευ are av/ev or af/ef. ELOT 743 is a
short table of letters and digraphs with two context rules (μπ, ντ and γκ at the start of a word;
υ after α, ε, η), written out here: no maintained package implements it.
"""

from __future__ import annotations

import re
import unicodedata

# Single letters, after accents and diaeresis are removed (ς is σ).
_LETTERS = {
    "α": "a",
    "β": "v",
    "γ": "g",
    "δ": "d",
    "ε": "e",
    "ζ": "z",
    "η": "i",
    "θ": "th",
    "ι": "i",
    "κ": "k",
    "λ": "l",
    "μ": "m",
    "ν": "n",
    "ξ": "x",
    "ο": "o",
    "π": "p",
    "ρ": "r",
    "σ": "s",
    "ς": "s",
    "τ": "t",
    "υ": "y",
    "φ": "f",
    "χ": "ch",
    "ψ": "ps",
    "ω": "o",
}
# Digraphs read as one sound. υ of αυ/ευ/ηυ is v before a vowel or voiced consonant, f before a
# voiceless one or at the end of the word (_U_DIPHTHONG_VOWELS, _VOICELESS).
_DIGRAPHS = {"ου": "ou", "γγ": "ng", "γξ": "nx", "γχ": "nch", "γκ": "gk", "μπ": "mp", "ντ": "nt"}
_WORD_INITIAL = {"μπ": "b", "ντ": "d", "γκ": "g"}
_U_DIPHTHONG_VOWELS = {"α": "a", "ε": "e", "η": "i"}
_VOICELESS = frozenset("θκξπστφχψ")
_DIAERESIS = "\u0308"
_GREEK_WORD = re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]+")


def _strip_marks(text: str) -> str:
    """Lower case without tonos, diaeresis or breathings. A diaeresis splits a digraph (Ευβοϊκός: ο-ι,
    never οι), so it is kept as a separator until the letters are read."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char) or char == _DIAERESIS)


def _read_word(word: str) -> str:
    letters: list[str] = []
    index = 0
    while index < len(word):
        char = word[index]
        if char == _DIAERESIS:  # it has kept the letters around it apart: nothing to read
            index += 1
            continue
        pair = word[index : index + 2]
        following = word[index + 2 : index + 3]
        if char in _U_DIPHTHONG_VOWELS and pair[1:] == "υ" and following != _DIAERESIS:
            voiceless = not following or following in _VOICELESS
            letters.append(_U_DIPHTHONG_VOWELS[char] + ("f" if voiceless else "v"))
            index += 2
        elif index == 0 and pair in _WORD_INITIAL:
            letters.append(_WORD_INITIAL[pair])
            index += 2
        elif pair in _DIGRAPHS:
            letters.append(_DIGRAPHS[pair])
            index += 2
        else:
            letters.append(_LETTERS.get(char, char))
            index += 1
    return "".join(letters)


def read_greek(text: str) -> str:
    """ELOT 743 reading of the Greek words in `text` (other characters stay as they are), lower case:
    Παπαδόπουλος -> "papadopoulos", Αβραμίδης -> "avramidis", Μπαλτάς -> "baltas"."""
    return _GREEK_WORD.sub(lambda match: _read_word(_strip_marks(match.group())), text)
