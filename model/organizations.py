"""Whether a name is a company's: CRM exports and forms put "Acme Ltd" and "Smith & Sons" in the
person's name field, and the network, which read only surnames, answered them like people.

A company is told by its legal form or trade style at the end ("Müller GmbH", "Acme Ltd.", "Garcia
S.A.", "Procter & Gamble Co.", "Smith & Sons"). Only forms that no name of the data is, and no
common name part could be, count. Not the two-letter ones (AG, SA, NV, BV, AB, KG, Oy), with or
without full stops: they are also name parts and initials ("Petrov S.A." is Sergei Alexandrovich
Petrov); "Co" only as "Co." or after "&"/"and". Case does not matter (a rule of the reader).
"""

from __future__ import annotations

import re

# Legal forms and trade styles, as the last word of a name, case-folded, with their full stops.
LEGAL_FORMS = frozenset(
    {
        "ltd",
        "ltd.",
        "limited",
        "llc",
        "l.l.c.",
        "llp",
        "l.l.p.",
        "inc",
        "inc.",
        "incorporated",
        "corp",
        "corp.",
        "corporation",
        "company",
        "co.",
        "plc",
        "p.l.c.",
        "gmbh",
        "mbh",
        "s.a.s.",
        "s.a.r.l.",
        "sarl",
        "s.à.r.l.",
        "s.r.l.",
        "srl",
        "s.p.a.",
        "spa.",
        "oyj",
        "a/s",
        "aps",
        "s.r.o.",
        "pty",
        "pty.",
        "bros.",
    }
)
# Legal forms and trade styles of two or three words at the end: "& Sons", "and Co", "Sp. z o.o.".
TRADE_STYLE_TAILS = frozenset(
    {
        ("&", "co"),
        ("and", "co"),
        ("&", "co."),
        ("and", "co."),
        ("&", "sons"),
        ("and", "sons"),
        ("&", "son"),
        ("and", "son"),
        ("&", "söhne"),
        ("&", "cie"),
        ("&", "cie."),
        ("&", "fils"),
        ("&", "partners"),
        ("and", "partners"),
        ("&", "associates"),
        ("and", "associates"),
        ("&", "brothers"),
        ("&", "bros."),
        ("sp.", "z", "o.o."),
        ("s.", "a", "r.l."),
    }
)
_WORDS = re.compile(r"[\s,]+")
_LEADING_MARKS = "\"'“‘«([{"
_TRAILING_MARKS = "\"'”’»)]};:!?"


def names_an_organization(text: str) -> bool:
    """Whether a cleaned name ends in a company's legal form or trade style after at least one word."""
    if " " not in text and "," not in text:  # one word, most names: no company (and no cost to read it)
        return False
    words = [
        bare for word in _WORDS.split(text.casefold()) if (bare := word.lstrip(_LEADING_MARKS).rstrip(_TRAILING_MARKS))
    ]
    if len(words) < 2:
        return False
    return (
        words[-1] in LEGAL_FORMS
        or tuple(words[-2:]) in TRADE_STYLE_TAILS
        or (len(words) > 3 and tuple(words[-3:]) in TRADE_STYLE_TAILS)
    )
