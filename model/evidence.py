"""What a name's script, letters and marker words say about its label, as a likelihood beside the network's.

The network reads the Latin fold of a name, so it never sees that 김 was Hangul or that Łukasz had
an ł. This module puts that evidence back by Bayes' rule: each feature f of a name as written (a
script, a distinctive Latin letter, a Han character found only in Chinese or only in Japanese
character sets, a word that marks a naming tradition such as Arabic's "bin" and "Abu") has a
likelihood P(f | label) of 1 for the labels whose names are written with it and a small floor for
the others (`script_floor`, `letter_floor`, `word_floor`). The name's label scores are the network's
log-probabilities plus the log-likelihoods of its features, renormalized: strong
evidence (Hangul) moves the answer a long way, and nothing is overridden outright. A letter that
no label's spelling uses (Turkish ı, Danish ø) and a script that no label is written in
(Devanagari, Thai, Hebrew) mean the name is outside what the model knows, and it abstains.

The table below is the default; the trainer writes it into the checkpoint, and the predictor reads
it from there, so a model is always served with the table it was evaluated with.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

EVERY_LABEL = "*"  # the script of every label's romanized names
SCRIPT_FEATURE, LETTER_FEATURE, HAN_FEATURE, WORD_FEATURE = "script:", "letter:", "han:", "word:"
SYLLABLES_FEATURE = "syllables:"
EAST_ASIAN_GIVEN_NAME = "east-asian-given-name"  # syllables joined by hyphens: Min-jun, Ka-ming, Ing-wen
KOREAN_GIVEN_NAME = "korean-given-name"  # and every syllable a Korean one: Min-jun, Ji-eun

DEFAULT_SCRIPTS: dict[str, list[str]] = {
    "Latin": [EVERY_LABEL],
    "Cyrillic": ["Russian"],
    "Greek": ["Greek"],
    "Arabic": ["Arabic"],
    "Han": ["Chinese", "Japanese"],
    "Hiragana": ["Japanese"],
    "Katakana": ["Japanese"],
    "Hangul": ["Korean"],
}

# Letters -> the labels whose spelling (or usual romanization) uses them; [] = no label's.
_LETTER_GROUPS: tuple[tuple[str, list[str]], ...] = (
    ("ąćęłńśźż", ["Polish"]),
    ("čďňřšťůž", ["Czech"]),
    ("ě", ["Czech", "Chinese"]),  # also pinyin's third tone
    ("ý", ["Czech", "Vietnamese"]),
    ("ñ", ["Spanish"]),
    ("ßäö", ["German"]),
    ("ü", ["German", "Spanish", "Chinese"]),
    ("ëï", ["Dutch", "French"]),
    ("ÿœæ", ["French"]),
    ("îû", ["French", "Italian"]),
    ("ç", ["French", "Portuguese"]),
    ("èù", ["French", "Italian", "Vietnamese", "Chinese"]),
    ("à", ["French", "Italian", "Portuguese", "Vietnamese", "Chinese", "Spanish"]),
    ("âêô", ["French", "Portuguese", "Vietnamese"]),
    ("ìò", ["Italian", "Vietnamese", "Chinese"]),
    ("é", ["French", "Spanish", "Portuguese", "Italian", "Czech", "Irish", "Vietnamese", "Chinese", "Dutch"]),
    ("áíú", ["Spanish", "Portuguese", "Czech", "Irish", "Italian", "Vietnamese", "Chinese"]),
    ("ó", ["Spanish", "Portuguese", "Czech", "Irish", "Italian", "Polish", "Vietnamese", "Chinese"]),
    ("ãõ", ["Portuguese", "Vietnamese"]),
    ("ăđơư", ["Vietnamese"]),
    # The tone marks of Vietnamese (Latin Extended Additional) and the tildes it shares with nothing else.
    ("ảạằắẳẵặầấẩẫậẻẽẹềếểễệỉĩịỏọồốổỗộờớởỡợủũụừứửữựỳỷỹỵ", ["Vietnamese"]),
    ("ǎǐǒǔǖǘǚǜ", ["Chinese"]),  # pinyin tones
    ("āīū", ["Arabic", "Japanese", "Chinese"]),  # Arabic transliteration, Hepburn long vowels, pinyin
    ("ōē", ["Japanese", "Chinese"]),
    ("ḥṣḍṭẓ", ["Arabic"]),
    ("ŏŭ", ["Korean"]),  # McCune-Reischauer
    # Letters of languages with no label here: Turkish, Azerbaijani, Romanian, Hungarian, the Baltic and
    # Nordic languages, Icelandic, Maltese, West African orthographies.
    ("ığşəţțșőűėųįķļņģøåðþħŋɛɔɓɗƙ", []),
)
DEFAULT_LETTERS: dict[str, list[str]] = {letter: labels for group, labels in _LETTER_GROUPS for letter in group}
# Words of a romanized name that mark its naming tradition, where the training names have none to learn
# them from: Arabic's patronymic, kunya and "servant of" words (bin Laden, Abu Bakr, Abdul Karim). Not
# the article "al"/"el" (Al is also an English given name, Al Gore; El a Spanish word), nor Mauritanian
# "Ould" (an English surname in the data). And Dutch particle chains before a surname (van der Sar, van
# den Berg, van de Velde), which the data writes joined or not at all (Vandale, Vandroogenbroeck): read
# with their spaces, the network took "van den berg" for Russian, whose file holds most spaced names.
# Not "van" alone (Vietnamese Văn, Van Morrison) nor "ter"/"ten" (Ter Avest is in German.txt too).
DEFAULT_WORDS: dict[str, list[str]] = {
    **{word: ["Arabic"] for word in ("bin", "ibn", "bint", "binti", "abu", "abou", "abd", "abdel", "abdul")},
    **{chain: ["Dutch"] for chain in ("van der", "van den", "van de", "van het")},
}
DEFAULT_HAN_COUNTRIES: dict[str, list[str]] = {"Chinese": ["Chinese"], "Japanese": ["Japanese"]}
# Word shapes that mark a naming tradition: a Korean given name in Latin letters is two syllables joined
# by a hyphen (Min-jun, Ji-eun; `model.readers.is_hyphenated_korean_given_name`), as are Taiwanese and
# Hong Kong ones (Ing-wen, Ka-ming), where mainland pinyin writes them as one word. A token of Korean
# syllables joined by hyphens carries both features: Korean 1, Chinese the floor, every other label
# the floor squared. The training data are surnames, so the network never saw such a name: it read
# "Min-jun" as Russian and "Ji-eun" as not a name.
DEFAULT_SYLLABLES: dict[str, list[str]] = {
    EAST_ASIAN_GIVEN_NAME: ["Korean", "Chinese"],
    KOREAN_GIVEN_NAME: ["Korean"],
}


@dataclass(frozen=True)
class EvidenceTable:
    """Which labels each script, letter, Han country and marker word is compatible with, and the floors
    for the rest.

    script_floor: P(script | a label not written in it); letter_floor and word_floor: the same for a
    letter and a marker word. The floors are prior knowledge, not fitted (the training names hold a
    handful of diacritics, no native script and no marker word): a name written in Hangul is taken
    to be a million times likelier Korean than anything else before the network's reading is counted
    (a Korean writes "Lee" as 이; the network, reading "lee", says English), a name with ł 20 times
    likelier Polish than not, one with "bin" a thousand times likelier Arabic, a hyphenated given name
    of Korean syllables ten times likelier Korean than Chinese and a hundred times likelier than any
    other label (`syllable_floor` 0.1, applied twice: Taiwanese and Hong Kong given names are
    hyphenated too, Ing-wen, Ka-ming, and some of their syllables are Korean spellings).
    """

    scripts: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_SCRIPTS))
    letters: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_LETTERS))
    han_countries: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_HAN_COUNTRIES))
    script_floor: float = 1e-6
    letter_floor: float = 0.05
    words: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_WORDS))
    word_floor: float = 1e-3
    syllables: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_SYLLABLES))
    syllable_floor: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EvidenceTable:
        """A checkpoint written before marker words or word shapes existed has none: it answers as it
        always did."""
        return cls(**{"words": {}, "syllables": {}, **values})


class Evidence:
    """The table applied to one checkpoint's labels: features -> a (L,) log-likelihood vector."""

    def __init__(self, table: EvidenceTable, labels: tuple[str, ...]) -> None:
        self.table = table
        self.labels = labels
        # Per feature kind (the text before ":"), the labels each value fits and P(feature | any other label).
        self._kinds: dict[str, tuple[dict[str, list[str]], float]] = {
            "script": (table.scripts, table.script_floor),
            "letter": (table.letters, table.letter_floor),
            "han": (table.han_countries, table.letter_floor),
            "word": (table.words, table.word_floor),
            "syllables": (table.syllables, table.syllable_floor),
        }
        # (L,) sum of log P(feature | label) over a feature tuple; zeros for none. Cached: few tuples recur.
        self.log_likelihood = functools.lru_cache(maxsize=4096)(self._log_likelihood_uncached)

    def supported_script(self, script: str) -> bool:
        """Whether some label of this checkpoint is written in the script."""
        return script in self.table.scripts and self.compatible_labels(SCRIPT_FEATURE + script) != ()

    def compatible_labels(self, feature: str) -> tuple[str, ...] | None:
        """The checkpoint's labels a feature fits, or None when the feature says nothing (Latin)."""
        kind, _, value = feature.partition(":")
        listed = self._kinds[kind][0].get(value)
        if listed is None or EVERY_LABEL in listed:
            return None
        return tuple(label for label in self.labels if label in listed)

    def unsupported_letters(self, features: tuple[str, ...]) -> tuple[str, ...]:
        """The letters among the features that no label of this checkpoint is spelled with."""
        return tuple(
            feature[len(LETTER_FEATURE) :]
            for feature in features
            if feature.startswith(LETTER_FEATURE) and self.compatible_labels(feature) == ()
        )

    def _log_likelihood_uncached(self, features: tuple[str, ...]) -> torch.Tensor:
        total = torch.zeros(len(self.labels))
        for feature in features:
            compatible = self.compatible_labels(feature)
            if not compatible:  # None: no evidence; (): unsupported, the name abstains before this counts
                continue
            floor = self._kinds[feature.partition(":")[0]][1]
            total += torch.tensor([0.0 if label in compatible else math.log(floor) for label in self.labels])
        return total
