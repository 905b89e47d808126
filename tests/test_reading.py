"""Reading names as written: scripts, distinctive letters, the Japanese, Korean, Greek and Arabic readers, full names."""

from __future__ import annotations

import pytest

from model.arabic_reader import read_arabic
from model.evidence import Evidence, EvidenceTable
from model.fullname import BIRTH_NAME_ABBREVIATIONS, BIRTH_NAME_MARKERS, PARTICLES, SUFFIXES, TITLES, split_full_name
from model.greek_reader import read_greek
from model.readers import is_hyphenated_korean_given_name, korean_syllable_spellings, read_japanese, read_korean
from model.reading import NameReader
from model.scripts import (
    as_one_alphabet,
    distinctive_letters,
    evidence_scripts,
    han_countries,
    letter_script,
    scripts_of,
)
from training.data import load_names_dir

LABELS = (
    "Arabic",
    "Chinese",
    "Czech",
    "Dutch",
    "English",
    "French",
    "German",
    "Greek",
    "Irish",
    "Italian",
    "Japanese",
    "Korean",
    "Polish",
    "Portuguese",
    "Russian",
    "Scottish",
    "Spanish",
    "Vietnamese",
)


@pytest.fixture(scope="module")
def reader() -> NameReader:
    return NameReader(Evidence(EvidenceTable(), LABELS), max_length=64, placeholders=("n/a", "null"))


@pytest.mark.parametrize(
    ("text", "scripts"),
    [
        ("Smith", ("Latin",)),
        ("Иванов", ("Cyrillic",)),
        ("Παπαδόπουλος", ("Greek",)),
        ("محمد", ("Arabic",)),
        ("田中", ("Han",)),
        ("さとう", ("Hiragana",)),
        ("スミス", ("Katakana",)),
        ("佐々木", ("Han",)),
        ("田中ゆう", ("Han", "Hiragana")),
        ("田ゆうこ", ("Hiragana", "Han")),
        ("김민준", ("Hangul",)),
        ("नरेंद्र", ("Devanagari",)),
        ("สมชาย", ("Thai",)),
        ("O'Brien-2", ("Latin",)),
        ("123 !", ()),
    ],
)
def test_scripts_of_reads_the_unicode_names_of_letters(text, scripts):
    assert scripts_of(text) == scripts


def test_scripts_of_ascii_takes_a_shortcut_that_agrees_with_letter_script():
    """Every ASCII character's script, as the shortcut for ASCII text reports it and as letter_script does."""
    for code in range(128):
        char = chr(code)
        expected = (letter_script(char),) if letter_script(char) else ()
        assert scripts_of(f"{char}") == expected
        assert scripts_of(f"1{char}-") == expected


def test_letter_script_ignores_marks_digits_and_modifier_letters():
    assert [letter_script(char) for char in "a1-\u0301ʼー"] == ["Latin", None, None, None, None, "Katakana"]


def test_distinctive_letters_are_lower_case_non_ascii_latin_and_keep_sharp_s():
    assert distinctive_letters("ŁUKASZ Żółć") == ("ó", "ć", "ł", "ż")
    assert distinctive_letters("STRAẞE") == ("ß",)
    assert distinctive_letters("Smith Иванов") == ()


def test_han_countries_tell_simplified_chinese_and_japanese_forms_apart():
    assert han_countries("刘") == ("Chinese",)  # simplified: in GB 2312, not in JIS X 0208
    assert han_countries("沢") == ("Japanese",)  # Japanese form of 澤
    assert han_countries("田中") == ()  # shared by both


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("田中", "tanaka"),
        ("佐藤", "sato"),
        ("伊藤", "ito"),
        ("井上", "inoue"),
        ("大野", "ono"),
        ("鈴木", "suzuki"),
        ("さとう", "sato"),
        ("佐々木", "sasaki"),  # the iteration mark within a word of pykakasi's dictionary
        ("菜々子", "nanako"),  # and outside one, where pykakasi writes "na(kurikaesi)ko": the part before, again
        ("代々木菜々子", "yoyoginanako"),
        ("小林々", "kobayashihayashi"),  # the character before it, not the whole word, read alone
        ("々", ""),  # a mark with nothing before it to repeat
        ("王〇明", "omei"),  # pykakasi's other notes for marks it does not read, "(maru)", are left out
    ],
)
def test_read_japanese_gives_the_customary_spelling_without_long_vowels(text, reading):
    assert read_japanese(text) == reading


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("김", "kim"),
        ("이", "lee"),
        ("박", "park"),
        ("최", "choi"),
        ("김민준", "kim minjun"),
        ("남궁민", "namgoong min"),
        ("한글", "han geul"),
        ("가나다라마", "ganadarama"),
    ],
)
def test_read_korean_uses_customary_surnames_and_revised_romanization(text, reading):
    assert read_korean(text) == reading


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("Παπαδόπουλος", "papadopoulos"),
        ("ΠΑΠΑΔΟΠΟΥΛΟΣ", "papadopoulos"),  # upper case, no accents
        ("Αβραμίδης", "avramidis"),  # β is v, η is i
        ("Χατζηδάκης", "chatzidakis"),
        ("Αγγελίδη", "angelidi"),  # γγ is ng
        ("Μπαλτάς", "baltas"),  # μπ at the start is b
        ("Ντόκος", "dokos"),  # ντ at the start is d
        ("Κοντός", "kontos"),  # ... and nt inside a word
        ("Ευαγγελόπουλος", "evangelopoulos"),  # ευ before a voiced letter is ev
        ("Λευτέρης", "lefteris"),  # ... before a voiceless one ef
        ("Ταΰγετος", "taygetos"),  # a diaeresis splits the diphthong
        ("Οικονόμου", "oikonomou"),
        ("Ψαράς Smith", "psaras Smith"),  # other characters stay
    ],
)
def test_read_greek_follows_elot_743(text, reading):
    assert read_greek(text) == reading


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("محمد", "muhammad"),  # a common word: its customary spelling
        ("عبد الله", "abd allah"),
        ("إسماعيل", "ismail"),
        ("منصور", "mansour"),  # و between consonants is ou
        ("خوري", "khouri"),  # final ي is i
        ("حداد", "hadad"),  # the unwritten vowel after an opening consonant is a
        ("سعيد", "said"),  # ع is unwritten but holds its place
        ("الحليم", "al halim"),  # the article
        ("الأسمر", "al asmar"),  # a consonant after a vowel closes its syllable
        ("البرغوثي", "al barghouthi"),
        ("ولد عائش", "ould aish"),
        ("مُحَمَّد", "muhammad"),  # diacritics do not hide a common word
        ("كَتَب", "katab"),  # written short vowels are read
        ("وليد", "walid"),  # و at the start is w
    ],
)
def test_read_arabic_gives_customary_spellings_with_short_vowels(text, reading):
    assert read_arabic(text) == reading


@pytest.mark.parametrize(
    ("text", "tokens", "before_comma"),
    [
        ("Smith", ("Smith",), 0),
        ("John Smith", ("John", "Smith"), 0),
        ("Smith, John", ("Smith", "John"), 1),
        ("Mrs. Tanaka", ("Tanaka",), 0),
        ("MRS TANAKA", ("TANAKA",), 0),
        ("Dr. J. R. Tanaka", ("Tanaka",), 0),
        ("John F. Kennedy", ("John", "Kennedy"), 0),
        ("A.B. Smith", ("Smith",), 0),
        ("J.-P. Sartre", ("Sartre",), 0),
        ("Smith, John, Jr.", ("Smith", "John"), 1),
        ("Smith, J.", ("Smith",), 0),
        ("Prof. Dr. Müller", ("Müller",), 0),
        # German-speaking degrees: the qualifier after a doctor's title, and hyphenated degrees
        ("Dr. med. Hans Müller", ("Hans", "Müller"), 0),
        ("Prof. Dr. med. dent. Klaus Fischer", ("Klaus", "Fischer"), 0),
        ("Dr. rer. nat. Anna Weber", ("Anna", "Weber"), 0),
        ("Prof. Dr. Ing. Schmidt", ("Schmidt",), 0),
        ("Dr.-Ing. Peter Wagner", ("Peter", "Wagner"), 0),
        ("Dipl.-Ing. Jan Novák", ("Jan", "Novák"), 0),
        ("Mag. Eva Huber", ("Eva", "Huber"), 0),
        ("Müller, Dr. med. Hans", ("Müller", "Hans"), 1),
        ("Eva Huber, Mag.", ("Eva", "Huber"), 0),  # a part of degrees alone is dropped, as "Smith, Jr." is
        ("Hans Müller, Dipl.-Ing.", ("Hans", "Müller"), 0),
        ("Müller, Dr. med.", ("Müller",), 0),
        ("Dr.med.Müller", ("Müller",), 0),  # written without spaces
        ("Dr.rer.nat. Anna Weber", ("Anna", "Weber"), 0),
        ("Dr. rer.nat. Anna Weber", ("Anna", "Weber"), 0),
        ("Dr. med.Müller", ("Müller",), 0),
        ("Univ.-Prof. Dr. Hans Müller", ("Hans", "Müller"), 0),
        ("Priv.-Doz. Dr. Eva Huber", ("Eva", "Huber"), 0),
        ("PD Dr. Eva Huber", ("Eva", "Huber"), 0),
        ("Dipl.-Kfm. Jan Novák", ("Jan", "Novák"), 0),
        ("Dr. Dr. h.c. mult. Hans Müller", ("Hans", "Müller"), 0),
        ("Mag. und Dipl.-Ing. Huber", ("Huber",), 0),
        ("Dr. & Mag. Huber", ("Huber",), 0),
        ("Dr. Dent.", ("Dent",), 0),  # a qualifier that is a name, last, right after a degree's title: the name
        ("Anna Weber, Dr. rer. nat.", ("Anna", "Weber"), 0),  # after another qualifier: a degree
        ("Hans Müller, Dr. med. dent.", ("Hans", "Müller"), 0),
        ("Dr.rer.nat.Müller", ("Müller",), 0),
        ("Dr.med.dent.Müller", ("Müller",), 0),
        ("Dr.Dr. Müller", ("Müller",), 0),  # titles joined by their full stops
        ("Prof.Dr. Hans Müller", ("Hans", "Müller"), 0),
        ("Young-chan", ("Young-chan",), 0),  # 찬, a Korean given name's syllable: no honorific
        ("Lee Jae-chan", ("Lee", "Jae-chan"), 0),
        ("García-San Martín", ("García-San", "Martín"), 0),  # an honorific ends a part
        ("Tanaka-san", ("Tanaka",), 0),  # a hyphenated honorific is a title
        ("Hiroshi Tanaka-sama", ("Hiroshi", "Tanaka"), 0),
        ("Kim-ssi", ("Kim",), 0),
        ("Xiao-shi", ("Xiao-shi",), 0),  # shi: a Chinese given name's syllable too
        ("-san", ("-san",), 0),
        # ... a qualifier is a name without its full stop or away from a degree
        ("Dr. Nat Turner", ("Nat", "Turner"), 0),
        ("Nat King Cole", ("Nat", "King", "Cole"), 0),
        ("Med. Smith", ("Med", "Smith"), 0),
        ("Ludwig van Beethoven", ("Ludwig", "van Beethoven"), 0),
        ("Mrs. Anna van der Berg", ("Anna", "van der Berg"), 0),
        ("van der Berg, Anna", ("van der Berg", "Anna"), 1),
        ("Ó Súilleabháin", ("Ó Súilleabháin",), 0),
        ("Ní Bhriain", ("Ní Bhriain",), 0),
        ("al-Rashid", ("al Rashid",), 0),
        ("Ahmed al Rashid", ("Ahmed", "al Rashid"), 0),
        ("O'Brien", ("O'Brien",), 0),
        ("Kim Min-jun", ("Kim", "Min-jun"), 0),
        ("García y López", ("García", "López"), 0),
        ("Nguyen Van Minh", ("Nguyen", "Van Minh"), 0),
        ("ジョン・スミス", ("ジョン", "スミス"), 0),
        ("王", ("王",), 0),
        ("田中　太郎", ("田中", "太郎"), 0),
        ("Tanaka, Hiroshi", ("Tanaka", "Hiroshi"), 1),
        ("John Smith.", ("John", "Smith"), 0),
        ("Smith., John", ("Smith", "John"), 1),
        ("Smith.", ("Smith",), 0),
        ('"Smith"', ("Smith",), 0),
        ("“Smith”", ("Smith",), 0),
        ("(Smith)", ("Smith",), 0),
        ("«Dupont»", ("Dupont",), 0),
        ("Smith;", ("Smith",), 0),
        ("Smith?!", ("Smith",), 0),
        ("J.R.R.Tolkien", ("Tolkien",), 0),
        ("Dr.Smith", ("Smith",), 0),
        ("St.John", ("St John",), 0),
        ("Ma.Teresa", ("Ma.Teresa",), 0),  # a full stop inside a word that is not an initial or a title stays
        ("Mr. & Mrs. John Smith", ("John", "Smith"), 0),
        ("Mr and Mrs Smith", ("Smith",), 0),
        ("John Smith 3rd", ("John", "Smith"), 0),
        ("Pedro de los Santos", ("Pedro", "de los Santos"), 0),  # Spanish, Italian, German particles
        ("Bartolomé de las Casas", ("Bartolomé", "de las Casas"), 0),
        ("Mario Dal Lago", ("Mario", "Dal Lago"), 0),
        ("Karl vom Stein", ("Karl", "vom Stein"), 0),
        ("Roald Dal", ("Roald", "Dal"), 0),  # a particle with no word after it is a name
        ("Smith (née Jones)", ("Smith", "Jones"), 0),  # birth-name markers between names are dropped
        ("Anna Müller geb. Schmidt", ("Anna", "Müller", "Schmidt"), 0),
        ("Jana Nováková roz. Dvořáková", ("Jana", "Nováková", "Dvořáková"), 0),
        ("Anna Kowalska z domu Nowak", ("Anna", "Kowalska", "Nowak"), 0),
        ("Анна Иванова урожд. Петрова", ("Анна", "Иванова", "Петрова"), 0),
        ("Anna Nee", ("Anna", "Nee"), 0),  # the last word stays: Nee is a surname too
        ("Rod Stewart", ("Rod", "Stewart"), 0),  # an abbreviated marker needs its full stop
        ("Roz Savage", ("Roz", "Savage"), 0),
        ("Jana Nováková rozená Dvořáková", ("Jana", "Nováková", "Dvořáková"), 0),
        ("Louis XIV", ("Louis",), 0),  # regnal numerals are suffixes
        ("Henry VIII", ("Henry",), 0),
        ("HENRY viii", ("HENRY",), 0),
        ("John Paul XXIII", ("John", "Paul"), 0),
        ("Jinping Xi", ("Jinping", "Xi"), 0),  # Xi and Vi are surnames, not numerals
        ("Thi Vi", ("Thi", "Vi"), 0),
        ("Berg, Anna van der", ("van der Berg", "Anna"), 1),  # trailing particles go to the surname
        ("Beethoven, Ludwig van", ("van Beethoven", "Ludwig"), 1),
        ("Anna van", ("Anna", "van"), 0),
        ("'t Hooft", ("'t Hooft",), 0),  # a leading apostrophe is part of the name
        ("St. John", ("St John",), 0),
        ("Ahmed al-Sayed", ("Ahmed", "al Sayed"), 0),
        ("Abu Bakr", ("Abu Bakr",), 0),
        # A leading particle before two words, or particles that form no chain, open a Vietnamese name
        ("Le Van Thanh", ("Le", "Van", "Thanh"), 0),
        ("Le Thi Hoa", ("Le", "Thi", "Hoa"), 0),
        ("Do Van Hung", ("Do", "Van", "Hung"), 0),
        ("Lê Văn Thành", ("Lê", "Văn", "Thành"), 0),
        ("Le, Van Thanh", ("Le", "Van Thanh"), 1),
        ("Le Van", ("Le Van",), 0),
        ("Le Pen", ("Le Pen",), 0),  # one word after the particle: a surname alone
        ("Van Morrison", ("Van Morrison",), 0),
        # Western surnames first without their comma: the words after the particle are no Vietnamese syllables
        ("Le Blanc Jean", ("Le Blanc", "Jean"), 0),
        ("Van Gogh Vincent", ("Van Gogh", "Vincent"), 0),
        ("La Shonda Jones", ("La Shonda", "Jones"), 0),
        ("Da Silva Joao", ("Da Silva", "Joao"), 0),  # Da is no Vietnamese particle here
        ("De La Cruz Maria", ("De La Cruz", "Maria"), 0),
        ("Van der Berg Anna", ("Van der Berg", "Anna"), 0),
        ("Abdul Karim Jabbar", ("Abdul Karim", "Jabbar"), 0),
        ("Thanh Le", ("Thanh", "Le"), 0),
        # Initials in Cyrillic and Greek, as in Latin: "А. С. Пушкин" was read as three names
        ("А. С. Пушкин", ("Пушкин",), 0),
        ("Пушкин А.С.", ("Пушкин",), 0),
        ("Α. Παπαδόπουλος", ("Παπαδόπουλος",), 0),
        ("王 小明", ("王", "小明"), 0),  # a Han character alone is a name, not an initial
        # Titles, particles and initials spelt with look-alike letters of another alphabet (Cyrillic е, М, а, Ј)
        ("D\u0435 Luca", ("D\u0435 Luca",), 0),
        ("\u041cr. John Smith", ("John", "Smith"), 0),
        ("Anna v\u0430n der Berg", ("Anna", "v\u0430n der Berg"), 0),
        ("\u0408. Smith", ("Smith",), 0),
    ],
)
def test_split_full_name_drops_titles_initials_and_suffixes_and_keeps_particles(text, tokens, before_comma):
    import unicodedata

    assert split_full_name(unicodedata.normalize("NFKC", text)) == (tokens, before_comma, False)


@pytest.mark.parametrize(
    "text",
    [
        "Mr.",
        "J.",
        "Dr. J. R.",
        "Mrs, J.",
        "Dr. med.",
        "Prof. Dr. med.",
        "Mag.",
        "Dr.-Ing.",
        "Dr. rer. nat.",
        "Dr. med. dent.",
    ],
)
def test_split_full_name_says_when_a_name_is_only_titles_and_initials(text):
    tokens, _, only_titles = split_full_name(text)
    assert only_titles and tokens


def test_split_full_name_takes_a_single_word_of_letters_as_the_general_path_does():
    """One word of letters skips the splitting, stripping and joining; it must give what they give:
    for every name of the data written as one word, and for words that are titles, suffixes,
    particles, initials or single letters of any script."""
    from model.encoder import clean_text
    from model.fullname import _split_words

    words = [clean_text(record.name) for record in load_names_dir("data/names").records]
    words += [word.title() for word in (*TITLES, *SUFFIXES, *PARTICLES) if word.isalpha()]
    words += [
        "J",
        "j",
        "Ó",
        "O",
        "Le",
        "Van",
        "Mr",
        "Jr",
        "Iii",
        "Xiv",
        "Xi",
        "Vi",
        "王",
        "김",
        "Ω",
        "ß",
        "Nguyễn",
        "Tanaka",
        "田中",
    ]
    words = [word for word in words if word.isalpha()]
    assert len(words) > 17_000
    assert [split_full_name(word) for word in words] == [_split_words(word) for word in words]
    assert split_full_name("J") == (("J",), 0, True) and split_full_name("Mr") == (("Mr",), 0, True)


def test_titles_suffixes_and_particles_are_surnames_of_the_training_data_only_where_known():
    """A title is dropped and a particle joins the next word, so one that is also a surname costs that
    surname in a full name; these are the known cases (Ii is Japanese; Le, Van, Do, La Vietnamese; Los
    Russian, kept a particle for de los Santos: as a name's last word it is still read as a name)."""
    names = {record.name.casefold() for record in load_names_dir("data/names").records}
    assert (TITLES | SUFFIXES) & names == {"ii"}
    assert PARTICLES & names == {"van", "san", "le", "mac", "do", "la", "ui", "los"}
    assert (BIRTH_NAME_MARKERS | BIRTH_NAME_ABBREVIATIONS) & names == set()


def test_reader_reads_each_script_with_its_reader(reader):
    cases = {
        "SMITH": "smith",
        "Nguyễn": "nguyen",
        "田中": "tian zhong",
        "김": "kim",
        "さとう": "sato",
        "Иванова": "ivanova",
        "Αβραμίδης": "avramidis",
        "محمد": "muhammad",
        "المنصوري": "al mansouri",
    }
    for text, reading in cases.items():
        token = reader.read(text).tokens[0]
        assert token.read_as == reading and token.reason is None
    assert reader.read("田中").tokens[0].alternatives == (("Japanese", ("tanaka",)),)
    assert reader.read("さとう").tokens[0].alternatives == ()  # kana is Japanese only


def test_three_han_characters_are_read_by_chinese_as_a_surname_and_a_given_name(reader):
    token = reader.read("王小明").tokens[0]
    assert token.read_as == "wang xiao ming"  # what every other label reads
    assert [label for label, _ in token.alternatives] == ["Japanese", "Chinese"]
    assert dict(token.alternatives)["Chinese"] == ("wang", "xiao ming")
    assert dict(reader.read("張學友").tokens[0].alternatives)["Chinese"] == ("zhang", "xue you")  # traditional
    for other in ("王", "李明", "田中", "田中太郎", "田中さと", "王小明明"):  # other lengths, or kana in it
        assert "Chinese" not in dict(reader.read(other).tokens[0].alternatives), other
    for other in ("長谷川", "习近平", "小野寺"):  # a first character that is no common Chinese surname
        assert "Chinese" not in dict(reader.read(other).tokens[0].alternatives), other
    for other in ("高倉健", "田中圭", "金子光"):  # a Japanese surname of two and a given name of one
        assert "Chinese" not in dict(reader.read(other).tokens[0].alternatives), other
    for other in ("王々明", "王沢明", "王𠀀𠀀", "王𠀀明"):  # 々, a Japanese-only form, a character unread
        assert "Chinese" not in dict(reader.read(other).tokens[0].alternatives), other
    spaced = reader.read("王 小明")  # a written space splits the name itself: each part is read as it is
    assert [dict(token.alternatives).get("Chinese") for token in spaced.tokens] == [None, None]


def test_labels_a_checkpoint_lacks_get_no_reading_of_their_own():
    chinese_only = NameReader(Evidence(EvidenceTable(), ("Chinese", "English")), max_length=64, placeholders=())
    assert [label for label, _ in chinese_only.read("王小明").tokens[0].alternatives] == ["Chinese"]
    assert chinese_only.read("田中").tokens[0].alternatives == ()
    japanese_only = NameReader(Evidence(EvidenceTable(), ("Japanese", "English")), max_length=64, placeholders=())
    assert [label for label, _ in japanese_only.read("王小明").tokens[0].alternatives] == ["Japanese"]


def test_reader_collects_marker_words_of_latin_names_only(reader):
    assert reader.read("Osama bin Laden").tokens[1].features == ("word:bin",)
    assert reader.read("Abu-Bakr").tokens[0].features == ("word:abu",)
    assert reader.read("Abdul Karim").tokens[0].features == ("word:abdul",)  # a particle: one part
    assert reader.read("Al Gore").tokens[0].features == ()  # "al" is no marker: Al is a given name too
    assert reader.read("Robin").tokens[0].features == ()  # whole words only
    assert reader.read("Pieter van den Berg").tokens[1].features == ("word:van den",)
    assert reader.read("van der Sar, Edwin").tokens[0].features == ("word:van der",)
    assert reader.read("Nguyen Van Den").tokens[1].features == ()  # a chain marks the surname after it only
    assert reader.read("Vincent van Gogh").tokens[1].features == ()  # "van" alone marks nothing
    assert reader.read("عبد الله").tokens[0].features == ("script:Arabic",)  # the script says it already


@pytest.mark.parametrize(
    ("reading", "korean"),
    [
        ("min-jun", True),
        ("ji-eun", True),
        ("seo-joon", True),  # customary oo for RR u
        ("kyung-hee", True),  # k for g, yu for yeo, ee for ui
        ("chan-wook", True),  # 욱 written wook
        ("jae-in-ho", False),  # three: a word such as do-re-mi, not a given name
        ("do-re-mi", False),
        ("so-so", False),  # a syllable repeated: a word
        ("na-na", False),
        ("ing-wen", False),  # Taiwanese: wen is no syllable of Korean given names
        ("ka-ming", False),  # Hong Kong: nor ming
        ("minjun", False),  # one word: too many European names split into Korean syllables
        ("min", False),
        ("jean-pierre", False),
        ("anne-marie", False),
        ("kai-shek", False),
        ("mei-ling", False),
        ("al-sayed", False),
        ("min-", False),
    ],
)
def test_hyphenated_korean_given_names_are_korean_syllables_joined_by_hyphens(reading, korean):
    assert is_hyphenated_korean_given_name(reading) is korean


def test_korean_syllable_spellings_hold_revised_romanization_and_customary_spellings():
    spellings = korean_syllable_spellings()
    assert {"gim", "bak", "i", "jun", "hui", "yeong", "seong"} <= spellings  # RR
    assert {"kim", "park", "lee", "joon", "hee", "young", "sung", "hyun", "shin", "wook"} <= spellings
    assert not {"jean", "pierre", "shek", "mei", "ann", "x", "zhang", "qing"} & spellings


def test_reader_marks_a_hyphenated_korean_given_name_and_never_judges_it(reader):
    token = reader.read("Ji-eun").tokens[0]
    assert token.features == ("syllables:east-asian-given-name", "syllables:korean-given-name")
    assert not token.judged  # the not-a-name model, fitted on surnames, took Ji-eun for junk
    assert reader.read("Jean-Pierre").tokens[0].features == ()
    assert reader.read("Jean-Pierre").tokens[0].judged


@pytest.mark.parametrize(
    ("scripts", "telling"),
    [
        (("Latin",), ("Latin",)),
        (("Latin", "Cyrillic"), ("Latin",)),  # Smіth, a Cyrillic і among Latin letters
        (("Cyrillic", "Latin"), ("Cyrillic",)),  # Иванov
        (("Greek", "Latin"), ("Greek",)),
        (("Latin", "Greek", "Cyrillic"), ("Latin",)),
        (("Han", "Hiragana"), ("Han", "Hiragana")),  # how Japanese names are written: both count
        (("Latin", "Han"), ("Latin", "Han")),
        (("Latin", "Cyrillic", "Han"), ("Latin", "Han")),
        (("Cyrillic",), ("Cyrillic",)),
    ],
)
def test_only_the_main_alphabet_of_a_latin_cyrillic_or_greek_mix_is_evidence(scripts, telling):
    assert evidence_scripts(scripts) == telling


def test_a_lookalike_letter_from_another_alphabet_is_read_as_the_word_around_it(reader):
    """A Cyrillic і in Smіth made it Russian 0.81 (its script's evidence); the word is Latin."""
    lookalike = reader.read("Sm\u0456th").tokens[0]
    assert lookalike.script == "Latin+Cyrillic" and lookalike.read_as == "smith"
    assert lookalike.features == () and lookalike.judged  # as Smith: judged by the not-a-name check
    assert reader.read("qw\u0435rty").tokens[0].judged  # so a spoofed placeholder is judged too
    mostly_cyrillic = reader.read("Ивано\u0076").tokens[0]
    assert mostly_cyrillic.features == ("script:Cyrillic",) and not mostly_cyrillic.judged


@pytest.mark.parametrize(
    ("word", "one_alphabet"),
    [
        ("Sm\u0456th", "smith"),  # Cyrillic і
        ("Hard\u0443", "hardy"),  # Cyrillic у, which unidecode reads "u"
        ("Ma\u0445well", "maxwell"),  # Cyrillic х, "kh"
        ("\u0421arter", "carter"),  # Cyrillic С, "S"
        ("\u041delen", "helen"),  # Cyrillic Н, "N"
        ("\u043delen", "helen"),  # its lower case, as the same word in another case must read
        ("\u0397elen", "helen"),  # Greek Η
        ("\u0392auer", "bauer"),  # Greek Β, "V"
        ("\u041fe\u0442p\u043e\u0432", "петров"),  # mostly Cyrillic: the Latin e and p are Cyrillic
        ("\u039c\u0391R\u0399\u0391", "maria"),  # R has no Greek look-alike: the word is Latin
        ("\u041el\u0435g", "oleg"),  # l and g have no Cyrillic look-alike
        ("Smith", "Smith"),  # one alphabet: as it is
        ("Иванов", "Иванов"),
        ("田中たろう", "田中たろう"),  # other mixes: as they are
        ("\u0430b", "\u0430b"),  # a tie (one look-alike each side, no other letter): as it is
    ],
)
def test_a_word_of_one_alphabet_with_lookalikes_of_another_is_written_in_its_own(word, one_alphabet):
    assert as_one_alphabet(word, scripts_of(word)) == one_alphabet


@pytest.mark.parametrize(
    "word", ["Hard\u0443", "\u041delen", "\u041fe\u0442p\u043e\u0432", "\u039c\u0391R\u0399\u0391"]
)
def test_a_mixed_word_reads_one_way_in_any_case(reader, word):
    readings = {reader.read(variant).read_as for variant in (word, word.upper(), word.lower(), word.swapcase())}
    assert len(readings) == 1


def test_a_placeholder_spelt_with_lookalikes_is_still_a_placeholder(reader):
    """The fixture's placeholders are n/a and null; а, о, А are Cyrillic."""
    assert reader.read("N/\u0410").placeholder and reader.read("n/\u0430").placeholder
    assert reader.read("nu\u04cfl").placeholder is False  # ӏ (palochka) is not in the look-alike table
    assert reader.read("N/\u0410 Smith").placeholder is False  # a part of a name is not the whole


def test_reader_collects_script_letter_and_han_evidence(reader):
    assert reader.read("김").tokens[0].features == ("script:Hangul",)
    assert reader.read("Łukasz").tokens[0].features == ("letter:ł",)
    assert set(reader.read("刘").tokens[0].features) == {"script:Han", "han:Chinese"}
    assert reader.read("Smith").tokens[0].features == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("123", "no-letters"),
        ("नरेंद्र", "unsupported-script"),
        ("Yılmaz", "unsupported-letters"),
        ("Åberg", "unsupported-letters"),
        ("王" * 40, "too-long"),
        ("R2D2", "not-a-name"),  # letters and digits: never read, whatever the character model would say
        ("Smith2", "not-a-name"),
        ("A-12", "not-a-name"),
        ("Smith²", "not-a-name"),
        ("Иванов7", "not-a-name"),
        ("Yılmaz2", "unsupported-letters"),  # the more telling reason first, as for a whole name
    ],
)
def test_reader_says_why_a_token_cannot_be_read(reader, text, reason):
    assert reader.read(text).tokens[0].reason == reason


def test_reader_marks_placeholders_and_the_tokens_the_not_a_name_check_judges(reader):
    assert reader.read("N/A").placeholder and reader.read(" NULL ").placeholder
    assert not reader.read("Nulla").placeholder
    assert reader.read("Smith").tokens[0].judged
    assert not reader.read("Иванов").tokens[0].judged  # a native script is evidence of a real name
    assert not reader.read("Wu").tokens[0].judged  # two letters are too few to judge
    assert not reader.read("van der Berg").tokens[0].judged  # a particle and a word


def test_a_part_with_digits_is_left_out_and_the_rest_of_the_name_is_read(reader):
    reading = reader.read("Anna2 Smith 007")
    assert [token.reason for token in reading.tokens] == ["not-a-name", None, "no-letters"]
    assert reading.read_as == "smith"


def test_name_reading_joins_what_was_read_and_every_script(reader):
    reading = reader.read("Smith 田中 123")
    assert reading.read_as == "smith tian zhong" and reading.script == "Latin+Han"
    assert [token.reason for token in reading.tokens] == [None, None, "no-letters"]


def test_reader_drops_variation_selectors_and_japanese_readings_without_letters(reader):
    assert reader.read("辻\U000e0101").tokens[0].read_as == reader.read("辻").tokens[0].read_as
    assert reader.read("さとう\ufe0f").tokens[0].read_as == "sato"
    assert reader.read("ア\ufe00").tokens[0].reason is None
    assert reader.read("-亿").tokens[0].alternatives == ()  # pykakasi reads it as "-": no Japanese reading


def test_reading_key_folds_case_as_the_reader_does(reader):
    from model.reading import reading_key

    assert reading_key("  GROẞMANN ") == reading_key("Großmann") == "großmann"
    assert reading_key("Grossmann") != reading_key("Großmann")  # casefold would merge them: ß is evidence
    assert reading_key("YILMAZ") != reading_key("Yılmaz")
    assert reading_key("İnce") == "İnce"  # the lower case of İ is two characters: kept


def test_reader_caches_readings(reader):
    assert reader.read("Schmidt") is reader.read("Schmidt")


def test_a_name_longer_than_max_name_characters_as_read_is_too_long_whole(reader):
    """No name is 256 characters long, and a short string can spell out to one: the ligature ﷺ is 18
    letters in NFKC, so 64 of them were 256 parts, explained in 12 s, each reading cached at 30 KB."""
    from model.reading import MAX_NAME_CHARACTERS

    for text in ("\ufdfa" * 64, " ".join(["Petrov", "Ivanov"] * 30), "x" * (MAX_NAME_CHARACTERS + 1)):
        reading = reader.read(text)
        assert [token.reason for token in reading.tokens] == ["too-long"], text[:20]
        assert len(reading.tokens[0].text) <= MAX_NAME_CHARACTERS
    longest = " ".join(["Li", "Wu"] * 43)[:MAX_NAME_CHARACTERS]
    assert all(token.reason is None for token in reader.read(longest).tokens)
