"""Company names in a person's name field abstain as not-a-name; people's names, initials included, do not."""

from __future__ import annotations

import pytest

from model.organizations import names_an_organization
from model.predictor import Predictor


@pytest.mark.parametrize(
    "text",
    [
        "Acme Ltd",
        "ACME LTD.",
        "acme ltd.",
        "Müller GmbH",
        "Smith & Sons",
        "Smith and Sons Ltd",
        "Müller GmbH.",  # a final full stop, or none, does not matter
        "Rossi S.p.A",
        "Smith & Sons.",
        "Müller GmbH & Co. KG",  # a legal form anywhere after the first word
        "Acme Ltd., London",
        "Acme Ltd (UK)",
        "<Acme Ltd>",
        "Smith&Sons",
        "Müller und Söhne",
        "Garcia & Hijos",
        "Silva & Cia. Ltda.",
        "Acme S.A. de C.V.",
        "Smith & Co",
        "Procter & Gamble Co.",  # Co. ending a name of two joined by &
        "Johnson and Johnson Co",
        "Meyer UG (haftungsbeschränkt)",
        "Petronas Sdn Bhd",
        "Smith, Inc.",
        "The Smith Company",
        "Dupont & Cie",
        "Rossi S.p.A.",
        "Novák s.r.o.",
        "Kowalski Sp. z o.o.",
        "Smith (Ltd)",
        "Widget Corp",
    ],
)
def test_a_legal_form_or_trade_style_at_the_end_names_a_company(text):
    assert names_an_organization(text)


@pytest.mark.parametrize(
    "text",
    [
        "Smith",
        "Ltd",  # a word alone: left to the not-a-name check
        "Anna Smith",
        "Petrov S.A.",  # Sergei Alexandrovich: two-letter forms are initials too
        "Garcia S.A.",
        "Siemens AG",
        "Nguyen Van Co",  # Co only after & / and
        "Nguyen Van Co.",
        "Nguyen & Co Minh",  # & Co must end the name
        "Mr and Mrs Nguyen Van Co",  # and joins two titles: a couple
        "Mr. & Mrs. Tran Co.",
        "Kim & Son",  # Son: a Korean surname, a Vietnamese given name; only "& Sons" is a style
        "Mr and Mrs Smith and Son",
        "Mr & Mrs Smith",
        "Johnson & Johnson",
        "Ltd Smith",  # the form must end the name
        "Jan A. G.",
    ],
)
def test_names_of_people_and_ambiguous_forms_are_not_companies(text):
    assert not names_an_organization(text)


def test_a_company_abstains_in_its_place_and_the_people_around_it_are_answered():
    predictor = Predictor.from_path(device="cpu")
    smith, company, shouting, person = predictor.predict(
        ["Smith", "Smith & Sons Ltd", "SMITH & SONS LTD", "Anna Smith"]
    )
    assert company.abstained and company.reason == "not-a-name" and company.predictions == ()
    assert shouting.reason == company.reason  # any case, one answer
    assert not smith.abstained and not person.abstained
