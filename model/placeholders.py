"""Whether a whole name field holds no name: a placeholder, as CRM exports and test records fill it.

The checkpoint's placeholder list ("null", "N/A", "test", "unknown", ...) is matched against the whole
field. Real exports also hold what that match misses, and the network answered them like people
("Unknown Unknown" English 0.96, "Test User" German, "#N/A" Chinese, "Admin" Russian 0.86):
- a spreadsheet's error value in the cell ("#N/A", "#VALUE!", "#REF!");
- a placeholder in brackets, quotes or dashes ("(none)", "<null>", "[blank]", "-none-", "'N/A'");
- several words, each a placeholder or a form's own word ("Test User", "Unknown Unknown", "First
  Last", "Firstname Lastname", "New Customer", "Lorem Ipsum");
- a form word that no one is named alone ("Admin", "User", "Customer").
Form words that are surnames too (Guest, Person, Last) count only beside another placeholder word, so
"Edgar Guest" and "Guest" keep their answers. Case, a word's full stop, its quotes or brackets and the
"Surname, Given" order do not matter ("Doe, John"); titles are left out ("Mr Test").
"""

from __future__ import annotations

import re

from model.fullname import LEADING_MARKS, TITLES, TRAILING_MARKS

# Error values a spreadsheet shows in a cell whose formula failed, case-folded.
SPREADSHEET_ERRORS = frozenset(
    {
        *("#n/a", "#value!", "#ref!", "#name?", "#div/0!", "#null!", "#num!", "#spill!", "#calc!"),
        *("#getting_data", "#field!", "#blocked!", "#connect!", "#busy!", "#unknown!", "#error!"),
    }
)
# A form's own words, and sample text: never anyone's name, alone or together.
FIELD_WORDS = frozenset(
    {
        *("user", "username", "customer", "client", "admin", "administrator", "account", "contact"),
        *("fullname", "givenname", "familyname", "lorem", "ipsum", "dolor"),
    }
)
# Words of a form or a sample record that are also someone's name (Guest, Person, Last): a placeholder
# only when every word of the field is one, or a placeholder ("First Last", "Guest User").
FILLER_WORDS = frozenset(
    {
        *("first", "last", "middle", "given", "family", "full", "name", "names", "surname", "guest", "person"),
        *("member", "new", "default", "demo", "fake", "my", "your"),
    }
)
# What may enclose a placeholder ("(none)", "<null>", "-none-", "*blank*"); "-", "?" alone stay placeholders.
ENCLOSING_MARKS = "\"'`()[]{}<>*_-–—.#~|/\\ "
_WORDS = re.compile(r"[\s,]+")


def fills_no_name(text: str, placeholders: frozenset[str]) -> bool:
    """Whether a cleaned name field (model.encoder.clean_text) holds a placeholder rather than a name;
    `placeholders`: the checkpoint's whole-field list, case-folded."""
    folded = text.casefold()
    if folded in placeholders or folded in SPREADSHEET_ERRORS or folded in FIELD_WORDS:
        return True
    if folded.isalpha():  # one word of letters alone, most names: nothing else to look at
        return False
    surname, comma, given = folded.partition(",")
    if comma and f"{given.strip()} {surname.strip()}" in placeholders:  # "Doe, John"
        return True
    bare = folded.strip(ENCLOSING_MARKS)
    if bare and bare != folded and bare in placeholders:
        return True
    words = [
        word
        for raw in _WORDS.split(bare)
        if (word := raw.lstrip(LEADING_MARKS).rstrip(TRAILING_MARKS).removesuffix(".")) and word not in TITLES
    ]
    if not words or not all(word in placeholders or word in FIELD_WORDS or word in FILLER_WORDS for word in words):
        return False
    return len(words) > 1 or words[0] in FIELD_WORDS or words[0] in placeholders
