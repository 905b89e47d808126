"""Whether a name is a company's: CRM exports and forms put "Acme Ltd" and "Smith & Sons" in the
person's name field, and the network, which read only surnames, answered them like people.

A company is told by a legal form anywhere after its first word ("Müller GmbH", "Acme Ltd., London",
"Müller GmbH & Co. KG", "Rossi S.p.A.") or a trade style at its end ("Smith & Sons", "Smith & Co.",
"Garcia & Hijos", and Co. ending two names joined by "&" or "and": "Procter & Gamble Co."). Only forms
that no name of the data is, and no common name part could be, count: not the two-letter ones (AG, SA,
NV, BV, AB, KG, UG, Oy), with or without full stops, which are also name parts and initials ("Petrov
S.A." is Sergei Alexandrovich Petrov); "Co" and "Son" only in a style ("& Co", not "Nguyen Van Co."; "&
Sons", not "Kim & Son": Son is a Korean surname and a Vietnamese given name). A word's final full stop
does not matter ("GmbH.", "S.p.A"), nor does case (a rule of the reader).
"""

from __future__ import annotations

import re

from model.fullname import TITLES, without_marks

# Legal forms, case-folded, without a final full stop: a company wherever they follow its first word.
LEGAL_FORMS = frozenset(
    {
        *("ltd", "limited", "llc", "l.l.c", "llp", "l.l.p", "inc", "incorporated", "corp", "corporation"),
        *("company", "plc", "p.l.c", "gmbh", "mbh", "ohg", "s.a.s", "s.a.r.l", "sarl", "s.à.r.l", "s.r.l"),
        *("srl", "s.p.a", "spa", "oyj", "a/s", "aps", "s.r.o", "pty", "ltda", "bros", "hnos", "kgaa", "bvba"),
        *("pllc", "bhd", "kaisha", "haftungsbeschränkt"),
    }
)
# Trade styles of two or three words at the end of a name, the same way: "& Sons", "and Co", "Sp. z o.o.".
TRADE_STYLE_TAILS = frozenset(
    {
        *(("&", "co"), ("and", "co"), ("&", "cie"), ("et", "cie"), ("&", "cia"), ("y", "cia"), ("&", "cía")),
        *(("y", "cía"), ("e", "cia"), ("&", "sons"), ("and", "sons"), ("&", "söhne"), ("und", "söhne")),
        *(("&", "fils"), ("et", "fils"), ("&", "hijos"), ("e", "hijos"), ("y", "hijos"), ("&", "filhos")),
        *(("e", "filhos"), ("&", "figli"), ("&", "partners"), ("and", "partners"), ("&", "associates")),
        *(("and", "associates"), ("&", "brothers"), ("&", "bros"), ("sp", "z", "o.o"), ("de", "c.v")),
    }
)
_WORDS = re.compile(r"[\s,]+")
_AMPERSAND = re.compile(r"\s*&\s*")  # "Smith&Sons" has three words


def names_an_organization(text: str) -> bool:
    """Whether a cleaned name holds a company's legal form after its first word, or ends in a trade style."""
    if " " not in text and "," not in text and "&" not in text:  # one word, most names: no company
        return False
    words = [bare for word in _WORDS.split(_AMPERSAND.sub(" & ", text.casefold())) if (bare := without_marks(word))]
    return len(words) >= 2 and (
        any(word in LEGAL_FORMS for word in words[1:])
        or tuple(words[-2:]) in TRADE_STYLE_TAILS
        or (len(words) > 3 and tuple(words[-3:]) in TRADE_STYLE_TAILS)
        or (words[-1] == "co" and _joins_two_names(words[:-1]))  # "Procter & Gamble Co."
    )


def _joins_two_names(words: list[str]) -> bool:
    """Whether "&" or "and" joins two names, not two titles ("Mr and Mrs Nguyen Van Co" is a couple)."""
    return any(
        word in ("&", "and") and 0 < index < len(words) - 1 and words[index - 1] not in TITLES
        for index, word in enumerate(words)
    )
