"""Whether a whole name field holds no name: a placeholder, as CRM exports and test records fill it.

The checkpoint's placeholder list ("null", "N/A", "test", "unknown", ...) is matched against the whole
field. Real exports also hold what that match misses, and the network answered them like people
("Unknown Unknown" English 0.96, "Test User" German, "#N/A" Chinese, "Admin" Russian 0.86):
- a spreadsheet's error value, in English and the labels' languages ("#N/A", "#VALUE!", German "#NV",
  "#WERT!", Russian "#Н/Д"), and any "#WORD!" or "#WORD?";
- a placeholder in brackets, quotes or dashes ("(none)", "<null>", "[blank]", "-none-", "'N/A'");
- a whole placeholder after titles or in the other order ("Mr. John Doe", "Doe, John", "Doe John");
- a stand-in name ("Max Mustermann", "Joe Bloggs", "Fulano de Tal");
- several words, each a placeholder or a form's own word, in English or the labels' languages ("Test
  User", "Unknown Unknown", "First Last", "Test-User 1", "first_name", "Deleted User", "Not Provided",
  "Vorname Nachname", "Όνομα Επώνυμο", "Họ Tên", "Lorem ipsum dolor sit amet");
- a form word that no one is named alone ("Admin", "User", "Customer").
Words that are names too count only where they cannot be one: form words such as Guest, Person and
Last only beside another placeholder word ("Edgar Guest" and "Guest" keep their answers), and
placeholders that are also names (Nan, Blank, Sample, Doe) as the whole field or beside a word that is
never a name ("Test Sample" is caught; "Nan Nan", "Herr Blank" keep their answers). After titles, one
word is a placeholder only if it is never a name ("Ms. Unknown", not "Mr Blank"). Case, a word's full
stop and its quotes or brackets do not matter; "[deleted]" and "(redacted)" are placeholders in brackets.
"""

from __future__ import annotations

import functools
import re

from model.fullname import TITLES, without_marks

# Error values a spreadsheet shows in a cell whose formula failed, case-folded: those without a final
# ! or ? (N/A in English and French, NV in German, N/D in Spanish, Italian, Portuguese and Polish, N/B
# in Dutch, Н/Д in Russian, Δ/Υ in Greek); the rest are caught by their shape, "#", one word, "!" or "?"
# (#VALUE!, #WERT!, #¿NOMBRE?, #ЗНАЧ!).
SPREADSHEET_ERRORS = frozenset({"#n/a", "#nv", "#n/d", "#n/b", "#na", "#н/д", "#δ/υ", "#getting_data"})
_SPREADSHEET_ERROR_SHAPE = re.compile(r"#[^\s#]{1,15}[!?]")
# Names that stand for anyone on forms, specimen documents and in examples, case-folded; not the one-word
# ones (Fulano, Beltrano), which are also surnames.
STAND_IN_NAMES = frozenset(
    {
        *("max mustermann", "erika mustermann", "joe bloggs", "jane bloggs", "fred bloggs", "joe public"),
        *("john q public", "john q. public", "fulano de tal", "fulana de tal", "jan modaal", "jane roe"),
        *("john roe", "richard roe", "hans muster", "john q doe", "john q. doe"),
    }
)
# A form's own words, and sample text: never anyone's name, alone or together. Also the labels of a
# name form in the languages of the labels ("Vorname Nachname", "Nome Cognome", "Имя Фамилия").
FIELD_WORDS = frozenset(
    {
        *("user", "username", "customer", "client", "admin", "administrator", "account", "contact"),
        *("fullname", "givenname", "familyname", "lorem", "ipsum", "dolor", "consectetur", "adipiscing"),
        *("vorname", "nachname", "familienname", "nome", "cognome", "nombre", "apellido", "apellidos"),
        *("prénom", "prenom", "imię", "imie", "nazwisko", "jméno", "jmeno", "příjmení", "prijmeni"),
        *("voornaam", "achternaam", "sobrenome", "имя", "фамилия", "отчество", "όνομα", "επώνυμο"),
        *("ονοματεπώνυμο", "氏名", "名前", "姓名", "الاسم"),
    }
)
# Words of a form or a sample record that are also someone's name (Guest, Person, Last): a placeholder
# only when every word of the field is one, or a placeholder ("First Last", "Guest User").
FILLER_WORDS = frozenset(
    {
        *("first", "last", "middle", "given", "family", "full", "name", "names", "surname", "guest", "person"),
        *("member", "new", "default", "demo", "fake", "my", "your", "deleted", "removed", "valued", "service"),
        *("not", "provided", "specified", "sit", "amet", "elit", "nom", "naam", "이름", "성명", "họ", "tên"),
    }
)
# Words that say a name was taken out, a placeholder only in brackets ("[deleted]", "(redacted)").
BRACKETED_WORDS = frozenset({"deleted", "removed", "redacted", "withheld", "hidden", "private", "anonymized"})
# Placeholders of the checkpoint's list that are also people's names: a placeholder as the whole field,
# or as a word beside one that is never a name ("Test Sample"); not otherwise ("Nan Nan", "Herr Blank").
NAMES_AMONG_PLACEHOLDERS = frozenset({"nan", "nil", "bar", "baz", "sample", "blank", "doe", "tester", "void"})
# What may enclose a placeholder ("(none)", "<null>", "-none-", "*blank*", "“unknown”", "«N/A»") or end it as
# a sentence does ("unknown;", "N/A!"); "-", "?" alone stay placeholders.
ENCLOSING_MARKS = "\"'`()[]{}<>*_-–—.#~|/\\ “”„‚‘’‹›«»;:!?,"
OPENING_MARKS = "\"'`([{<*_-–—~|“„‚‘‹«»"  # what a bracketed word starts with: "[deleted]", not "Deleted."
_WORDS = re.compile(r"[\s,\-_]+")


def fills_no_name(text: str, placeholders: frozenset[str]) -> bool:
    """Whether a cleaned name field (model.encoder.clean_text) holds a placeholder rather than a name;
    `placeholders`: the checkpoint's whole-field list, case-folded."""
    folded = text.casefold()
    if folded in placeholders or folded in SPREADSHEET_ERRORS or folded in FIELD_WORDS or folded in STAND_IN_NAMES:
        return True
    if folded.isalpha():  # one word of letters alone, most names: nothing else to look at
        return False
    if _SPREADSHEET_ERROR_SHAPE.fullmatch(folded):
        return True
    bare = folded.strip(ENCLOSING_MARKS)
    if bare and bare != folded and (bare in placeholders or (bare in BRACKETED_WORDS and folded[0] in OPENING_MARKS)):
        return True
    words = [bare_word for raw in _WORDS.split(bare) if (bare_word := without_marks(raw))]
    untitled = [word for word in words if word not in TITLES]
    if len(untitled) > 1 and _is_whole_placeholder(untitled, placeholders):
        return True
    plain = _never_names(placeholders)
    if len(untitled) == 1 and len(words) > 1:  # titles and one word: "Ms. Unknown", not "Herr Blank"
        return untitled[0] in plain
    if len(words) < 2 or not all(
        word in placeholders or word in FIELD_WORDS or word in FILLER_WORDS or word.isdigit() for word in words
    ):
        return False
    # A placeholder that is also a name counts beside a word that is never one: "Test Sample", not "Nan Nan"
    return not any(word in NAMES_AMONG_PLACEHOLDERS for word in words) or any(word in plain for word in words)


@functools.lru_cache(maxsize=8)
def _never_names(placeholders: frozenset[str]) -> frozenset[str]:
    """The words that are never a name's: the placeholders that are no name too, and the form's words
    (one set per checkpoint's list, made once)."""
    return (placeholders - NAMES_AMONG_PLACEHOLDERS - FILLER_WORDS) | FIELD_WORDS


def _is_whole_placeholder(words: list[str], placeholders: frozenset[str]) -> bool:
    """Whether the words, titles left out, are a whole placeholder or stand-in name of several words, as
    written or, for two, the other way round ("Mr. John Doe", "Doe, John", "Doe John")."""
    orders = (words, words[::-1]) if len(words) == 2 else (words,)
    return any(" ".join(order) in placeholders or " ".join(order) in STAND_IN_NAMES for order in orders)
