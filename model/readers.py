"""Romanizers for the scripts unidecode reads wrongly for names: Japanese and Korean.

unidecode reads every Han character as Mandarin (田中 -> "Tian Zhong", where a Japanese reader says
Tanaka) and turns Hangul into Revised Romanization fragments (김 -> "gim", where the world writes
Kim). Japanese is read with pykakasi's dictionary, in the customary spelling without long-vowel
marks (佐藤 -> sato, as the training data writes it); Korean by the Unicode syllable arithmetic,
Revised Romanization letter tables, and the customary spelling of common surnames. Greek and Arabic
have readers of their own (`model.greek_reader`, `model.arabic_reader`); everything else is read by
`model.encoder.normalize` (unidecode).
"""

from __future__ import annotations

import functools
import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pykakasi

_JAPANESE_LONG_VOWELS = (
    (re.compile(r"ou(?![aeiou])"), "o"),
    (re.compile(r"oo"), "o"),
    (re.compile(r"uu(?![aeiou])"), "u"),
)
_kakasi_lock = threading.Lock()
_UNREAD_MARK = re.compile(r"\(([a-z]+)\)")  # what pykakasi writes for a mark it does not read: "(kurikaesi)"
_ITERATION_MARK_NOTE = "kurikaesi"  # its note for 々, the iteration mark


@functools.cache
def _kakasi() -> pykakasi.kakasi:
    """pykakasi's converter, built once per process (it loads its dictionary: about a second)."""
    import pykakasi  # imported here: importing this module does no work

    return pykakasi.kakasi()  # type: ignore[no-untyped-call]  # pykakasi's __init__ has no annotations


def read_japanese(text: str) -> str:
    """Hepburn reading of kanji and kana, long vowels written short ("satou" -> "sato").

    pykakasi reads the iteration mark 々 within its dictionary's words (佐々木 -> sasaki), but outside
    them writes it "(kurikaesi)" (菜々子 -> "na(kurikaesi)ko"): there the mark repeats the character
    before it, as it means, read alone (nanako). Its other notes for marks it does not read, such as
    "(maru)" for 〇 and "(sime)" for 〆, are left out."""
    words: list[str] = []
    before = ""  # the character before the current part
    for part in _converted(text):
        word = _UNREAD_MARK.sub(functools.partial(_repeated, character_before=before), part["hepburn"])
        before = part["orig"][-1:] or before
        for pattern, replacement in _JAPANESE_LONG_VOWELS:
            word = pattern.sub(replacement, word)
        words.append(word)
    return "".join(words)


def japanese_first_word(text: str) -> str:
    """The characters of pykakasi's first part of the text: a word of its dictionary where one starts
    there (高倉健 is one, 田中圭 starts with 田中), else one character (王小明 starts with 王)."""
    parts = _converted(text)
    return parts[0]["orig"] if parts else ""


def _converted(text: str) -> list[dict[str, str]]:
    """pykakasi's parts of the text, each its original characters and their readings."""
    with _kakasi_lock:  # pykakasi keeps per-call state in the converter
        parts: list[dict[str, str]] = _kakasi().convert(text)
    return parts


def _repeated(mark: re.Match[str], character_before: str) -> str:
    """The reading an unread mark stands for: the iteration mark repeats the character before it (read
    alone); any other mark is left out, as is a mark with no character before it."""
    if mark.group(1) != _ITERATION_MARK_NOTE or not character_before:
        return ""
    return "".join(part["hepburn"] for part in _converted(character_before) if not _UNREAD_MARK.search(part["hepburn"]))


# Revised Romanization of Korean: the 19 initial consonants, 21 vowels and 28 finals of a syllable.
_INITIALS = ("g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h")
_VOWELS = (
    "a",
    "ae",
    "ya",
    "yae",
    "eo",
    "e",
    "yeo",
    "ye",
    "o",
    "wa",
    "wae",
    "oe",
    "yo",
    "u",
    "wo",
    "we",
    "wi",
    "yu",
    "eu",
    "ui",
    "i",
)
_FINALS = (
    "",
    "k",
    "k",
    "k",
    "n",
    "n",
    "n",
    "t",
    "l",
    "k",
    "m",
    "l",
    "l",
    "l",
    "p",
    "l",
    "m",
    "p",
    "p",
    "t",
    "t",
    "ng",
    "t",
    "t",
    "k",
    "t",
    "p",
    "t",
)
_FIRST_SYLLABLE, _LAST_SYLLABLE = 0xAC00, 0xD7A3
# Customary spellings of common Korean surnames (what passports, the training data and the press
# write), where Revised Romanization would give 'gim', 'i', 'bak'.
KOREAN_SURNAMES = {
    "김": "kim",
    "이": "lee",
    "박": "park",
    "최": "choi",
    "정": "jung",
    "강": "kang",
    "조": "cho",
    "윤": "yoon",
    "장": "jang",
    "임": "lim",
    "한": "han",
    "오": "oh",
    "서": "seo",
    "신": "shin",
    "권": "kwon",
    "황": "hwang",
    "안": "ahn",
    "송": "song",
    "류": "ryu",
    "유": "yoo",
    "전": "jeon",
    "홍": "hong",
    "고": "ko",
    "문": "moon",
    "양": "yang",
    "손": "son",
    "배": "bae",
    "백": "baek",
    "허": "heo",
    "남": "nam",
    "심": "shim",
    "노": "noh",
    "하": "ha",
    "곽": "kwak",
    "성": "sung",
    "차": "cha",
    "주": "joo",
    "우": "woo",
    "구": "koo",
    "나": "na",
    "민": "min",
    "진": "jin",
    "지": "ji",
    "엄": "eom",
    "채": "chae",
    "원": "won",
    "천": "cheon",
    "방": "bang",
    "공": "kong",
    "현": "hyun",
    "함": "ham",
    "변": "byun",
    "염": "yeom",
    "여": "yeo",
    "추": "choo",
    "도": "do",
    "소": "so",
    "석": "seok",
    "선": "sun",
    "설": "seol",
    "마": "ma",
    "길": "gil",
    "연": "yeon",
    "위": "wi",
    "표": "pyo",
    "명": "myung",
    "기": "ki",
    "반": "ban",
    "왕": "wang",
    "금": "keum",
    "옥": "ok",
    "육": "yook",
    "인": "in",
    "맹": "maeng",
    "제": "je",
    "모": "mo",
    "탁": "tak",
    "국": "kook",
    "은": "eun",
    "편": "pyun",
    "용": "yong",
    "예": "ye",
    "경": "kyung",
    "봉": "bong",
    "사": "sa",
    "부": "boo",
    "가": "ka",
    "복": "bok",
    "태": "tae",
    "목": "mok",
    "형": "hyung",
    "피": "pi",
    "두": "doo",
    "감": "kam",
    "호": "ho",
    "라": "ra",
    "제갈": "jegal",
    "남궁": "namgoong",
    "황보": "hwangbo",
    "선우": "sunwoo",
    "독고": "dokgo",
    "사공": "sagong",
    "서문": "seomun",
    "동방": "dongbang",
}


def _romanize_syllables(syllables: str) -> str:
    letters = []
    for char in syllables:
        code = ord(char)
        if not _FIRST_SYLLABLE <= code <= _LAST_SYLLABLE:
            letters.append(char)  # a bare jamo or another character: left for unidecode
            continue
        offset = code - _FIRST_SYLLABLE
        letters.append(_INITIALS[offset // 588] + _VOWELS[(offset % 588) // 28] + _FINALS[offset % 28])
    return "".join(letters)


def read_korean(text: str) -> str:
    """A Hangul name in the customary form: 김 -> "kim", 김민준 -> "kim minjun", 남궁민 -> "namgoong min".

    A Korean name is written surname first, with no space: a leading known surname (two syllables
    for the compound ones) is split off when a given name follows; anything else is read syllable by
    syllable in Revised Romanization.
    """
    for length in (2, 1):
        surname = text[:length]
        if surname in KOREAN_SURNAMES and (len(text) == length or len(text) - length <= 2):
            given = _romanize_syllables(text[length:])
            return KOREAN_SURNAMES[surname] + (" " + given if given else "")
    return _romanize_syllables(text)


# Spellings Koreans use beside Revised Romanization for a syllable of a given name (Joon for 준 jun,
# Hee for 희 hui, Young for 영 yeong, Sung for 성 seong, Hyun for 현 hyeon, Shin for 신 sin, Kyung for
# 경 gyeong): each rule rewrites one part of an RR syllable (sh only before i, as in Shin).
_CUSTOMARY_VOWELS = (("yeo", "you"), ("yeo", "yu"), ("eo", "u"), ("eo", "o"), ("u", "oo"), ("ui", "ee"), ("i", "ee"))
_CUSTOMARY_INITIALS = (("g", "k"), ("b", "p"), ("d", "t"), ("j", "ch"), ("r", "l"))


@functools.cache
def korean_syllable_spellings() -> frozenset[str]:
    """Every way a syllable of a Korean given name is written in Latin letters here: its Revised
    Romanization, the customary spelling of a common surname, and the customary variants of RR's
    vowels and initial consonants (one rewrite of each at most). Left out: syllables that given names
    hardly use and Taiwanese and Hong Kong names do (e, we, wae, yae with a final: Ing-wen's wen, Yat-
    sen's sen, Teng-hui's teng; i with ng: Ka-ming's ming)."""
    spellings: set[str] = set(KOREAN_SURNAMES.values())
    finals = sorted(set(_FINALS))
    for initial in _INITIALS:
        for vowel in _VOWELS:
            for final in finals:
                if (final and vowel in ("e", "we", "wae", "yae")) or (vowel == "i" and final == "ng"):
                    continue
                initial_spellings = {initial, *(new for old, new in _CUSTOMARY_INITIALS if initial == old)}
                if initial == "s" and vowel in ("i", "wi"):  # 신 shin, 시 shi
                    initial_spellings.add("sh")
                for initial_spelling in initial_spellings:
                    for vowel_spelling in {vowel, *(new for old, new in _CUSTOMARY_VOWELS if vowel == old)}:
                        spellings.add(initial_spelling + vowel_spelling + final)
                if initial == "" and vowel == "u":  # 우 woo, 욱 wook, 웅 woong
                    spellings.add("woo" + final)
    return frozenset(spellings)


def is_hyphenated_korean_given_name(reading: str) -> bool:
    """Whether a lower-case Latin reading is two different Korean syllables joined by a hyphen, the
    way Korean given names are written in Latin letters (Min-jun, Ji-eun, Jae-in, Seo-joon). A
    syllable repeated (so-so, yo-yo, na-na) or three or more (do-re-mi, a-e-i-o-u) is a word, not a
    given name, and left to the not-a-name check."""
    pieces = reading.split("-")
    spellings = korean_syllable_spellings()
    return len(pieces) == 2 and pieces[0] != pieces[1] and all(piece in spellings for piece in pieces)
