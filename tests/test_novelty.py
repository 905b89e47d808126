"""The not-a-name character model: Kneser-Ney fitting, backoff scoring in tensors, the threshold."""

from __future__ import annotations

import math
import random

import pytest
import torch

from model.assets import DEFAULT_CHECKPOINT_PATH
from model.checkpoint import load_checkpoint
from model.encoder import NameEncoder, pad_sequences
from model.novelty import CharLanguageModel, padded_symbols
from tests.names_fixtures import synthetic_names
from training.novelty import _backed_off, fit_language_model, fit_threshold

ENCODER = NameEncoder()


@pytest.fixture(scope="module")
def names() -> list[tuple[int, ...]]:
    return [ENCODER.encode(name) for label_names in synthetic_names(per_label=80).values() for name in label_names]


def test_language_model_distributions_sum_to_one_after_any_context(names):
    import training.novelty as novelty

    tables = {}
    real = novelty._tables
    novelty._tables = lambda probability, backoff, config: (
        tables.update(p=probability, b=backoff, c=config) or real(probability, backoff, config)
    )
    try:
        novelty.fit_language_model(names, ENCODER.vocab_size, order=3)
    finally:
        novelty._tables = real
    config = tables["c"]
    targets = [*range(1, config.vocab_size), config.end_id]  # every symbol a name can continue with
    for context in [(config.begin_id, config.begin_id), (ENCODER.encode("ko")), (ENCODER.encode("zq"))]:
        total = sum(_backed_off((*tuple(context), symbol), tables["p"], tables["b"], config) for symbol in targets)
        assert total == pytest.approx(1.0, abs=1e-6)


def test_language_model_tensor_scores_equal_the_backoff_recursion(names):
    import training.novelty as novelty

    captured = {}
    real = novelty._tables
    novelty._tables = lambda p, b, c: captured.update(p=p, b=b, c=c) or real(p, b, c)
    try:
        model = novelty.fit_language_model(names, ENCODER.vocab_size, order=4)
    finally:
        novelty._tables = real
    rng = random.Random(0)
    probes = [tuple(rng.randint(1, ENCODER.vocab_size - 1) for _ in range(rng.randint(1, 9))) for _ in range(40)]
    scores = model.total_log_probs(*pad_sequences(probes))
    for probe, score in zip(probes, scores.tolist(), strict=True):
        symbols = padded_symbols(probe, captured["c"])
        expected = sum(
            math.log(_backed_off(tuple(symbols[end - 3 : end + 1]), captured["p"], captured["b"], captured["c"]))
            for end in range(3, len(symbols))
        )
        assert score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_language_model_dense_table_equals_the_backoff_recursion_on_every_code(names, order):
    """The dense table is built an order at a time with broadcast adds; every one of its base ** order
    entries must be exactly what the backoff recursion gives that code, for a fitted model and for
    the shipped one."""
    models = [fit_language_model(names, ENCODER.vocab_size, order=order)]
    if order == 4:
        models.append(load_checkpoint(DEFAULT_CHECKPOINT_PATH).build_language_model())
    for model in models:
        base = model.config.base
        codes = torch.arange(base**order)
        by_recursion = model.backoff_log_probs([(codes // base ** (order - 1 - j)) % base for j in range(order)])
        assert torch.equal(model._conditional_table(torch.device("cpu")), by_recursion)


def test_language_model_table_builds_under_a_float64_default_and_for_float64_tables():
    """The table comes out in torch's default dtype, as it always has, whatever the dtype of the
    tables it is built from: a service run with float64 as the default still answers."""
    float32_table = (
        load_checkpoint(DEFAULT_CHECKPOINT_PATH).build_language_model()._conditional_table(torch.device("cpu"))
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = load_checkpoint(DEFAULT_CHECKPOINT_PATH).build_language_model()
        table = model._conditional_table(torch.device("cpu"))
        assert table.dtype == torch.float64 and torch.equal(table, float32_table.double())
        doubled = load_checkpoint(DEFAULT_CHECKPOINT_PATH).build_language_model().double()
        assert torch.allclose(doubled._conditional_table(torch.device("cpu")), table, atol=1e-5)
        from model.predictor import Predictor

        assert Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu").predict(["Tanaka"])[0].predictions
    finally:
        torch.set_default_dtype(previous)


def test_language_model_prefers_names_like_its_training_names(names):
    model = fit_language_model(names, ENCODER.vocab_size)
    ids, lengths = ENCODER.encode_batch(["Kovaski", "Bozov", "Xqzwvk", "Qqqqqq"])
    mean = model.mean_log_probs(ids, lengths).tolist()
    assert min(mean[:2]) > max(mean[2:]) + 1.0


def test_language_model_scores_do_not_depend_on_batch_padding(names):
    model = fit_language_model(names, ENCODER.vocab_size)
    alone = model.total_log_probs(*ENCODER.encode_batch(["Bo"]))
    padded = model.total_log_probs(*ENCODER.encode_batch(["Bo", "Wolfeschlegelsteinhausen"]))
    assert alone[0] == padded[0]


def test_threshold_is_the_validation_quantile(names):
    model = fit_language_model(names[::2], ENCODER.vocab_size)
    config = fit_threshold(model, names[1::2], 0.1)
    scores = model.mean_log_probs(*pad_sequences(names[1::2]))
    assert float((scores < config.threshold).float().mean()) == pytest.approx(0.1, abs=0.02)
    assert config.val_quantile == 0.1 and "null" in config.placeholders


def test_fitting_refuses_what_it_cannot_fit(names):
    with pytest.raises(ValueError, match="order"):
        fit_language_model(names, ENCODER.vocab_size, order=1)
    with pytest.raises(ValueError, match="no names"):
        fit_language_model([], ENCODER.vocab_size)
    with pytest.raises(ValueError, match="quantile"):
        fit_threshold(fit_language_model(names, ENCODER.vocab_size), names, 1.5)


def test_language_model_refuses_tables_of_another_shape(names):
    model = fit_language_model(names, ENCODER.vocab_size, order=3)
    tables = model.tables()
    with pytest.raises(ValueError, match="do not match order"):
        CharLanguageModel(model.config, {key: value for key, value in tables.items() if not key.endswith("_3")})
    with pytest.raises(ValueError, match="unigram"):
        CharLanguageModel(model.config, {**tables, "unigram_log_probs": torch.zeros(3)})


def test_a_model_of_an_order_too_high_for_the_dense_table_scores_names_alike_without_it(names, monkeypatch):
    """A 5-gram model over 36 symbols would build a 242 MiB table (a 6-gram one 8.7 GB): above
    DENSE_TABLE_MAX_ENTRIES each code is looked up by the recursion, to the same total, and no table."""
    import model.novelty as novelty

    model = fit_language_model(names, ENCODER.vocab_size, order=3)
    ids, lengths = pad_sequences(names[:200])
    with_table = model.total_log_probs(ids, lengths)
    monkeypatch.setattr(novelty, "DENSE_TABLE_MAX_ENTRIES", model.config.base**3 - 1)
    tableless = fit_language_model(names, ENCODER.vocab_size, order=3)
    assert torch.equal(tableless.total_log_probs(ids, lengths), with_table)
    assert model._table is not None and tableless._table is None


def test_a_predictor_whose_character_model_has_no_dense_table_answers_as_with_one(monkeypatch):
    """The small-batch path reads the dense table; without one, a lone name goes the batched way."""
    import model.novelty as novelty
    from model.predictor import Predictor

    names = ["Hinton", "xzqwv", "Nguyễn", "qwerty", "Kim Min-jun"]
    with_table = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    monkeypatch.setattr(novelty, "DENSE_TABLE_MAX_ENTRIES", 1)
    tableless = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    assert tableless.scorer.small_batch is None
    for name in names:  # one at a time: the small-batch path's calls
        expected, got = with_table.predict([name])[0], tableless.predict([name])[0]
        assert (got.reason, [p.label for p in got.predictions]) == (
            expected.reason,
            [p.label for p in expected.predictions],
        )
        assert [p.probability for p in got.predictions] == pytest.approx(
            [p.probability for p in expected.predictions], abs=1e-5
        )
    assert tableless.language_model._table is None
