"""Arabic-script names in the Latin spelling Arabic speakers write them in: Muhammad, not "mHmd".

Arabic writes long vowels only (ا, و, ي); the short vowels a name is said with are left out unless
the rare diacritics are there. unidecode therefore reads محمد as "mHmd" and عبد الله as "`bd llh",
spellings no one writes, and the network (which learnt Khoury, Haddad, Nassar) cannot place them.
This reader gives the customary spelling: a table of the words names are built from most often
(Muhammad, Abd, Allah, bin, Abu, Ould, Pasha), the article as "al", and for any other word the
letters with their usual Latin values and the unwritten short vowel read as "a" where two
consonants would otherwise meet at the start of a syllable (الحليم -> "al halim", البرغوثي -> "al
barghouthi", منصور -> "mansour"). Written diacritics are used where present. No maintained
package does this offline without a trained model: the rules are short enough to read here.
"""

from __future__ import annotations

import re

# Whole words as they are customarily spelt (after the article is split off).
COMMON_WORDS = {
    "عبد": "abd",
    "الله": "allah",
    "بن": "bin",
    "ابن": "ibn",
    "بنت": "bint",
    "ابو": "abu",
    "ابي": "abi",
    "بني": "bani",
    "ولد": "ould",
    "ال": "al",
    "ايت": "ait",
    "باشا": "pasha",
    "باي": "bey",
    "خوجة": "khoja",
    "محمد": "muhammad",
    "احمد": "ahmad",
    "محمود": "mahmoud",
    "مصطفى": "mustafa",
    "علي": "ali",
    "حسن": "hassan",
    "حسين": "hussein",
    "عمر": "omar",
    "عثمان": "othman",
    "يوسف": "youssef",
    "ابراهيم": "ibrahim",
    "اسماعيل": "ismail",
    "سليمان": "suleiman",
    "موسى": "musa",
    "عيسى": "issa",
    "يحيى": "yahya",
    "داود": "daoud",
    "خليل": "khalil",
    "جعفر": "jaafar",
    "عائشة": "aisha",
    "فاطمة": "fatima",
    "مريم": "maryam",
    "زينب": "zainab",
    "خديجة": "khadija",
}
_CONSONANTS = {
    "ب": "b",
    "ت": "t",
    "ث": "th",
    "ج": "j",
    "ح": "h",
    "خ": "kh",
    "د": "d",
    "ذ": "dh",
    "ر": "r",
    "ز": "z",
    "س": "s",
    "ش": "sh",
    "ص": "s",
    "ض": "d",
    "ط": "t",
    "ظ": "z",
    "ع": "",  # ʿayn: unwritten in customary spellings (Ali, Said), but a consonant for the vowels
    "غ": "gh",
    "ف": "f",
    "ق": "q",
    "ك": "k",
    "ل": "l",
    "م": "m",
    "ن": "n",
    "ه": "h",
    "ء": "",  # hamza on the line
    "پ": "p",
    "چ": "ch",
    "ڤ": "v",
    "گ": "g",
}
_LONG_VOWELS = {"ا": "a", "ى": "a", "ة": "a", "ئ": "i", "ؤ": "u"}
_WAW, _YA = "و", "ي"
_SHORT_VOWEL_MARKS = {"\u064e": "a", "\u064f": "u", "\u0650": "i", "\u064b": "an", "\u064c": "un", "\u064d": "in"}
_SUKUN, _SHADDA = "\u0652", "\u0651"
_ALEF_FORMS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ی": "ي", "ک": "ك", "ـ": None})
_INITIAL_HAMZA = {"إ": "i"}  # أ and آ read as the plain alif's "a"
# Arabic letters, tatweel and the vowel marks (presentation forms are folded to these by NFKC first).
_ARABIC_WORD = re.compile(r"[\u0621-\u065f\u0670-\u06d3\u0750-\u077f\u08a0-\u08ff]+")
_ARTICLE = "ال"


def read_arabic(text: str) -> str:
    """The customary Latin spelling of the Arabic words in `text`, lower case; other characters stay:
    محمد -> "muhammad", عبد الله -> "abd allah", المنصوري -> "al mansouri"."""
    return _ARABIC_WORD.sub(lambda match: _read_word(match.group()), text)


def _read_word(word: str) -> str:
    first = _INITIAL_HAMZA.get(word[0], "")
    plain = word.translate(_ALEF_FORMS)
    bare = _without_marks(plain)
    if bare in COMMON_WORDS:
        return COMMON_WORDS[bare]
    if bare.startswith(_ARTICLE) and len(bare) > len(_ARTICLE) + 1:
        rest = plain[len(_ARTICLE) :].lstrip(_SUKUN)
        return "al " + (COMMON_WORDS.get(_without_marks(rest)) or _spell(rest))
    spelt = _spell(plain)
    return first + spelt[1:] if first and spelt.startswith("a") else spelt


def _without_marks(word: str) -> str:
    return "".join(char for char in word if not "\u064b" <= char <= "\u065f")


def _spell(word: str) -> str:
    """Letters with their Latin values, the unwritten short vowel read as "a" after a consonant that
    opens a syllable when another consonant follows it; written diacritics win over the guess."""
    out: list[str] = []
    onset_waiting = False  # the last letter was a consonant with no vowel after it yet
    after_vowel = False
    for index, char in enumerate(word):
        following = word[index + 1 : index + 2]
        if char in _SHORT_VOWEL_MARKS:
            out.append(_SHORT_VOWEL_MARKS[char])
            onset_waiting, after_vowel = False, True
        elif char == _SUKUN:
            onset_waiting = False
        elif char == _SHADDA:
            if out:
                out.append(out[-1][-1:])
        elif char in _LONG_VOWELS:
            out.append(_LONG_VOWELS[char])
            onset_waiting, after_vowel = False, True
        elif char in (_WAW, _YA):
            glide = "w" if char == _WAW else "y"
            vowel = "ou" if char == _WAW else "i"
            at_edge_of_vowel = index == 0 or after_vowel or following in _LONG_VOWELS or following in (_WAW, _YA)
            if at_edge_of_vowel:
                if onset_waiting:
                    out.append("a")
                out.append(glide)
                onset_waiting, after_vowel = True, False
            else:
                out.append(vowel)
                onset_waiting, after_vowel = False, True
        elif char in _CONSONANTS:
            if onset_waiting:
                out.append("a")  # this consonant closes the syllable the "a" opened
            # After a vowel a consonant may close its syllable (al-Asmar); otherwise it opens one.
            onset_waiting = not onset_waiting and not after_vowel
            out.append(_CONSONANTS[char])
            after_vowel = False
        else:
            out.append(char)
    return "".join(out)
