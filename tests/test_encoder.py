import random
import sys
import unicodedata

import pytest
import torch

import model.encoder as encoder_module
from model.encoder import (
    DEFAULT_ALPHABET,
    PAD_ID,
    UNKNOWN_ID,
    EncoderConfig,
    NameEncoder,
    NameEncodingError,
    clean_text,
    name_key,
    normalize,
    pad_sequences,
)


@pytest.mark.parametrize(
    ("raw", "folded"),
    [("Ślusàrski", "slusarski"), ("Нгуен", "nguen"), ("Παπαδόπουλος", "papadopoulos"), ("Nguyễn", "nguyen")],
)
def test_normalize_folds_scripts_to_lower_case_latin(raw, folded):
    assert normalize(raw) == folded


def test_normalize_collapses_spaces_added_by_transliteration():
    assert normalize("王") == "wang"
    assert normalize("  王  小明 ") == "wang xiao ming"


@pytest.mark.parametrize("variant", ["SMITH", "smith", "Smith", "sMiTh", "ＳＭＩＴＨ"])
def test_normalize_is_case_invariant(variant):
    assert normalize(variant) == "smith"
    assert NameEncoder().encode(variant) == NameEncoder().encode("smith")


def test_default_alphabet_has_no_upper_case_letters():
    assert DEFAULT_ALPHABET.lower() == DEFAULT_ALPHABET
    assert UNKNOWN_ID not in NameEncoder().encode("O'BRIEN-SMITH")


def test_name_key_casefolds_and_applies_nfkc():
    assert name_key(" Weiß ") == name_key("WEISS") == "weiss"
    assert name_key("Ｓｍｉｔｈ") == "smith"  # full-width letters fold under NFKC


def test_encoder_maps_every_character_without_dropping_any():
    encoder = NameEncoder()
    ids = encoder.encode("O'Brien-2")
    assert len(ids) == len("O'Brien-2")
    assert ids[-1] == UNKNOWN_ID  # the digit is unknown, not dropped
    assert UNKNOWN_ID not in ids[:-1]
    assert PAD_ID not in ids


@pytest.mark.parametrize("raw", ["", "   ", "123", "!!!", "٣٤"])
def test_encoder_rejects_name_without_letters(raw):
    with pytest.raises(NameEncodingError, match="no letters"):
        NameEncoder().encode(raw)


def test_encoder_rejects_name_longer_than_max_length():
    encoder = NameEncoder(EncoderConfig(max_length=10))
    assert len(encoder.encode("a" * 10)) == 10
    with pytest.raises(NameEncodingError, match="11 characters"):
        encoder.encode("a" * 11)


def test_encoder_rejects_non_string():
    with pytest.raises(NameEncodingError, match="must be a string"):
        NameEncoder().encode(42)


def test_encoder_rejects_repeated_alphabet_symbols():
    with pytest.raises(ValueError, match="repeated"):
        NameEncoder(EncoderConfig(alphabet="aab"))


def test_encode_batch_pads_right_and_reports_lengths():
    ids, lengths = NameEncoder().encode_batch(["Li", "Nguyen"])
    assert ids.shape == (2, 6)
    assert lengths.tolist() == [2, 6]
    assert torch.all(ids[0, 2:] == PAD_ID)
    assert torch.all(ids[1] != PAD_ID)


def test_pad_sequences_keeps_every_id_in_place_as_int64():
    """Rows of different lengths, in input order (not sorted), ids right-aligned with nothing lost."""
    sequences = [(5, 6, 7), (9,), (2, 3, 4, 5, 6), (8, 8)]
    ids, lengths = pad_sequences(sequences)
    assert ids.dtype == lengths.dtype == torch.long
    assert lengths.tolist() == [3, 1, 5, 2]
    assert ids.tolist() == [
        [5, 6, 7, PAD_ID, PAD_ID],
        [9, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
        [2, 3, 4, 5, 6],
        [8, 8, PAD_ID, PAD_ID, PAD_ID],
    ]


def test_encoder_cache_returns_the_same_ids_and_still_raises():
    encoder = NameEncoder()
    first = encoder.encode("Nguyễn")
    assert encoder.encode("Nguyễn") == first and isinstance(first, tuple)
    for _ in range(2):  # errors are not cached away
        with pytest.raises(NameEncodingError):
            encoder.encode("123")


def test_clean_text_drops_every_format_character_of_the_interpreters_unicode_table():
    """Zero-width spaces and joiners, direction marks, the soft hyphen, the BOM: invisible, never letters."""
    format_characters = [chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Cf"]
    assert len(format_characters) > 100
    assert all(clean_text(f"Sm{char}ith") == "Smith" for char in format_characters), [
        hex(ord(char)) for char in format_characters if clean_text(f"Sm{char}ith") != "Smith"
    ]


@pytest.mark.parametrize("filler", ["\u115f", "\u1160", "\u3164", "\uffa0"])
def test_clean_text_drops_the_invisible_hangul_fillers(filler):
    """Letters (Lo), not format characters, but invisible: "Smith\u3164" read as Latin+Hangul, Korean 0.995."""
    assert clean_text(f"Smith{filler}") == clean_text(f"Sm{filler}ith") == "Smith"
    assert clean_text(f"Smith {filler}") == "Smith" and clean_text(f"김{filler}민준") == "김민준"
    assert clean_text(filler) == ""


def test_clean_text_drops_every_sign_that_nfkc_spells_as_an_abbreviation():
    """™ -> "TM", № -> "No", ㎏ -> "kg", ㌔ -> "キロ": after a name, never part of it. The class is the
    interpreter's table: every symbol whose NFKC form has two or more letters, and no other."""
    spelled = [
        chr(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)).startswith("S")
        and sum(map(str.isalpha, unicodedata.normalize("NFKC", chr(code)))) >= 2
    ]
    assert len(spelled) > 200
    assert [char for char in spelled if clean_text(f"Smith{char}") != "Smith"] == []
    assert [char for char in spelled if clean_text(f"Sm{char}ith") != "Sm ith"] == []  # a separator, as it looks
    assert clean_text("Smith\u2122") == "Smith"
    assert clean_text("\u24b6nna") == "Anna"  # a circled letter is a letter in a decorative font: kept


def test_a_name_with_a_trademark_sign_reads_as_the_name():
    assert normalize("Smith\u2122") == normalize("SMITH\u2120") == normalize("Smith") == "smith"
    assert normalize("M\u00fcller\u00ae") == normalize("M\u00fcller \u00a9") == normalize("Müller") == "muller"
    assert normalize("Rossi\u20ac") == normalize("\U0001f600Rossi\u00b0") == "rossi"  # unidecode: "EUR"
    assert normalize("Smith$") == "smith$"  # ASCII's own symbols stay as they were


def test_clean_text_makes_every_non_ascii_symbol_a_space():
    symbols = [chr(code) for code in range(128, sys.maxunicode + 1) if unicodedata.category(chr(code)).startswith("S")]
    assert len(symbols) > 5000
    kept = [char for char in symbols if clean_text(f"Smith {char}") != "Smith" and char != "\u2212"]  # minus: a hyphen
    # those NFKC turns into something else first: a letter or ASCII (Ⓐ -> A, ＄ -> $), kept as it turns out
    assert all(unicodedata.normalize("NFKC", char) != char for char in kept), kept


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("\ufeff김민준\u200b", "김민준"),
        ("مح\u200cمد", "محمد"),
        ("O\u00b4Brien", "O'Brien"),  # NFKC alone makes the acute accent a space and a combining mark
        ("O`Brien", "O'Brien"),
        ("Hawai\u02bbi", "Hawai'i"),
        ("Jean\u2014Pierre", "Jean-Pierre"),
        ("Jean\u2015Pierre", "Jean-Pierre"),
        ("Smith\u2212Jones", "Smith-Jones"),  # the minus sign, a symbol, was a space: two names
        ("O\u2019Brien", "O\u2019Brien"),  # the right single quote is unidecode's to fold, as before
    ],
)
def test_clean_text_makes_apostrophe_and_dash_look_alikes_plain_and_drops_invisible_marks(raw, cleaned):
    assert clean_text(raw) == cleaned


def test_a_name_reads_the_same_with_invisible_marks_or_typed_apostrophes():
    assert normalize("\u200e김민준\u00ad") == normalize("김민준")
    assert normalize("O\u00b4Brien") == normalize("O`Brien") == normalize("O'Brien") == "o'brien"


def _clean_text_in_full(raw: str) -> str:
    """clean_text's four passes, always taken: what its shortcut for clean ASCII must agree with."""
    visible = encoder_module._FORMAT_CHARACTERS.sub("", raw.translate(encoder_module._LOOKALIKES))
    text = encoder_module._without_symbols(unicodedata.normalize("NFKC", encoder_module._without_symbols(visible)))
    return encoder_module._WHITESPACE.sub(" ", encoder_module._VARIATION_SELECTORS.sub("", text)).strip()


def test_clean_texts_shortcut_for_ascii_agrees_with_the_full_passes():
    """Every ASCII character (controls, tabs, the grave accent, runs of spaces), alone and in names."""
    rng = random.Random(0)
    ascii_chars = [chr(code) for code in range(128)]
    samples = ["", " ", "Smith", " Smith", "Smith ", "Van  Berg", "O`Brien", "A\tB", "A\x1fB", "A\x7fB", "J. R. R."]
    samples += ascii_chars + [f"Sm{char}th" for char in ascii_chars]
    samples += [
        "".join(rng.choice(ascii_chars if rng.random() < 0.3 else "abcXYZ '-`.") for _ in range(rng.randint(1, 9)))
        for _ in range(20_000)
    ]
    assert [clean_text(text) for text in samples] == [_clean_text_in_full(text) for text in samples]


def test_encode_readings_encodes_each_reading_as_encode_does():
    encoder = NameEncoder()
    readings = ["hinton", "o'brien", "nguyen van minh", "hinton"]
    assert encoder.encode_readings(readings) == [encoder.encode(reading) for reading in readings]
    with pytest.raises(NameEncodingError, match="no letters"):
        encoder.encode_readings(["hinton", "123"])


@pytest.mark.parametrize(
    ("lower", "upper"), [("ʒukov", "Ʒukov"), ("ʃevchenko", "Ʃevchenko"), ("ɑbe", "Ɑbe"), ("ξένια", "ΞΈΝΙΑ")]
)
def test_letters_unidecode_spells_apart_by_case_read_alike_in_any_case(lower, upper):
    """unidecode writes Ʒ "Zh" but ʒ "z", and Ɑ as nothing: folded after it, a name's case changed its reading."""
    assert normalize(lower) == normalize(upper) == normalize(upper.lower())
