"""The numpy path for small batches (model.small_batch) against the torch path it stands in for."""

from __future__ import annotations

import pytest
import threadpoolctl
import torch

from model.assets import DEFAULT_CHECKPOINT_PATH
from model.encoder import EncoderConfig, NameEncoder, pad_sequences
from model.networks import build_network
from model.predictor import Predictor
from model.small_batch import (
    LONE_NAMES_MAX,
    SMALL_BATCH_MAX,
    TORCH_SIGMOID_MIN_BATCH,
    SmallBatchScorer,
    small_batch_applies,
)
from tests.conftest import tiny_language_model
from tests.network_fixtures import network_config

NAMES = [
    "Hinton", "Nguyen", "Kowalska", "O'Brien", "Abandonato", "Xi", "Schwarzenegger", "Ng", "Dvořák",
    "Tanaka", "Zhang", "Papadopoulos", "Mc", "Ó", "Sánchez-Villalobos", "Ivanova", "Björk", "Li",
]  # fmt: skip
ENCODER = NameEncoder(EncoderConfig())
SEQUENCES = [ENCODER.encode(name) for name in NAMES]


def torch_path(network, language_model, sequences):
    ids, lengths = pad_sequences(sequences)
    with torch.inference_mode():
        return network(ids, lengths), language_model.total_log_probs(ids, lengths)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"pooling": "last_max"},
        {"pooling": "last_max", "num_heads": 2, "ngram_order": 5, "ngram_buckets": 4096, "ngram_dim": 8},
        {"pooling": "last", "num_heads": 3, "ngram_order": 3, "ngram_buckets": 64, "ngram_dim": 4},
    ],
    ids=["last", "last_max", "two_ngram_heads", "three_small_bags"],
)
@pytest.mark.parametrize(
    "count",
    [1, 2, len(SEQUENCES), TORCH_SIGMOID_MIN_BATCH],
    ids=["one", "two_one_by_one", "together", "together_torch_sigmoids"],
)
def test_numpy_path_matches_the_network_and_the_character_model(changes, count):
    torch.manual_seed(1)
    config = EncoderConfig()
    network = build_network(network_config("gru", len(config.alphabet) + 2, 5, hidden_size=16, **changes)).eval()
    with torch.no_grad():  # a calibration that is not the identity, so it is checked too
        network.label_bias.copy_(torch.randn(5))
        network.temperature.fill_(1.7)
    language_model = tiny_language_model(config)
    assert small_batch_applies(network, torch.device("cpu"))
    sequences = [SEQUENCES[index % len(SEQUENCES)] for index in range(count)]
    net, lm = SmallBatchScorer(network, language_model).score(sequences)
    expected_net, expected_lm = torch_path(network, language_model, sequences)
    assert net.dtype == expected_net.dtype == torch.float32 and net.shape == expected_net.shape
    torch.testing.assert_close(net, expected_net, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(lm, expected_lm, atol=1e-5, rtol=1e-6)


def test_numpy_path_matches_the_shipped_model_on_every_label_order():
    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    assert predictor.scorer.small_batch is not None  # the shipped model is the kind it covers
    sequences = [predictor.encoder.encode(name) for name in NAMES]
    net, lm = predictor.scorer.small_batch.score(sequences)
    expected_net, expected_lm = torch_path(predictor.network, predictor.language_model, sequences)
    torch.testing.assert_close(net, expected_net, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(lm, expected_lm, atol=1e-5, rtol=1e-6)
    assert torch.equal(net.argsort(dim=1, descending=True)[:, :3], expected_net.argsort(dim=1, descending=True)[:, :3])


def test_no_names_give_empty_scores_and_abstained_calls_are_answered():
    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    assert predictor.scorer.small_batch is not None
    net, lm = predictor.scorer.small_batch.score([])
    assert net.shape == (0, len(predictor.labels)) and lm.shape == (0,)
    ranked = predictor.rank(["123", "!!"], top_k=3)  # nothing reaches the network
    assert ranked.reasons == ["no-letters", "no-letters"]


def test_a_lone_name_gets_the_answer_the_torch_path_gives_it_in_a_batch():
    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    on_torch = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    # Batch size cannot force the torch path: the scorer runs each distinct reading once, so a batch of
    # repeats is a small one.
    on_torch.scorer.small_batch = None
    together = on_torch.rank(NAMES, top_k=3)
    for index, name in enumerate(NAMES):
        alone = predictor.rank([name], top_k=3)
        assert alone.label_ids[0] == together.label_ids[index]
        assert alone.reasons[0] == together.reasons[index]
        assert alone.probabilities[0] == pytest.approx(together.probabilities[index], abs=1e-5)


@pytest.mark.parametrize(
    "size",
    [1, LONE_NAMES_MAX, LONE_NAMES_MAX + 1, 7, TORCH_SIGMOID_MIN_BATCH - 1, TORCH_SIGMOID_MIN_BATCH, SMALL_BATCH_MAX],
)
def test_names_run_together_or_one_by_one_get_the_torch_paths_numbers(size):
    """Every batch size the numpy path takes, one by one or together (longest first, then put back in
    order), with names of equal and of very different lengths and repeats among them."""
    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    assert predictor.scorer.small_batch is not None
    pool = [*NAMES, "Ab", "Cd", "Ef", "Wolfeschlegelsteinhausenbergerdorff", "Q"]
    sequences = [predictor.encoder.encode(pool[(7 * index) % len(pool)]) for index in range(size)]
    net, lm = predictor.scorer.small_batch.score(sequences)
    expected_net, expected_lm = torch_path(predictor.network, predictor.language_model, sequences)
    torch.testing.assert_close(net, expected_net, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(lm, expected_lm, atol=1e-5, rtol=1e-6)


def test_names_of_one_length_run_together():
    """No name ends before another: every step runs the whole batch."""
    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    assert predictor.scorer.small_batch is not None
    sequences = [predictor.encoder.encode(name) for name in ("Smith", "Jones", "Ivans", "Tanak", "Nguye")]
    net, lm = predictor.scorer.small_batch.score(sequences)
    expected_net, expected_lm = torch_path(predictor.network, predictor.language_model, sequences)
    torch.testing.assert_close(net, expected_net, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(lm, expected_lm, atol=1e-5, rtol=1e-6)


def test_the_thread_count_holds_numpys_blas_pool_too():
    """The numpy path's matmuls run on numpy's BLAS, whose own pool would spin a thread per core
    beside the one torch thread the service asks for."""

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]

    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # the pool as a 2-core machine starts it
        assert blas_threads() and all(threads == 2 for threads in blas_threads())
        Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu", num_threads=1)
        assert all(threads == 1 for threads in blas_threads())


def test_weights_changed_in_place_are_what_the_numpy_path_reads():
    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    before = predictor.rank(["Hinton"], top_k=1).probabilities[0][0]
    with torch.no_grad():
        predictor.network.heads[0].linear.bias.add_(5 * torch.arange(18.0))  # favour the last labels
        predictor.network.heads[1].linear.bias.add_(5 * torch.arange(18.0))
    after = predictor.rank(["Hinton"], top_k=1)
    predictor.scorer.small_batch = None
    expected = predictor.rank(["Hinton"], top_k=1)  # the torch path, same weights
    assert after.label_ids[0] == expected.label_ids[0] != predictor.labels.index("English")
    assert after.probabilities[0][0] == pytest.approx(expected.probabilities[0][0], abs=1e-5)
    assert after.probabilities[0][0] != before


def test_gru_weights_changed_in_place_are_laid_out_again():
    """The numpy path lays the GRU's weights out once for its steps; a change in place is seen."""
    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    scorer = predictor.scorer.small_batch
    assert scorer is not None
    sequences = [predictor.encoder.encode(name) for name in NAMES]
    before, _ = scorer.score(sequences)
    with torch.no_grad():
        predictor.network.rnn.weight_hh_l0.mul_(1.5)
        predictor.network.rnn.bias_ih_l0.add_(0.25)
    after, _ = scorer.score(sequences)
    expected, _ = torch_path(predictor.network, predictor.language_model, sequences)
    assert not torch.allclose(after, before, atol=1e-3)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize(
    "architecture, changes",
    [("lstm", {}), ("rnn", {}), ("gru", {"num_layers": 2}), ("gru", {"bidirectional": True}), ("concat", {})],
)
def test_other_networks_keep_the_torch_path(architecture, changes):
    network = build_network(network_config(architecture, 34, 3, hidden_size=8, **changes)).eval()
    assert not small_batch_applies(network, torch.device("cpu"))


def test_a_network_in_training_mode_keeps_the_torch_path():
    network = build_network(network_config("gru", 34, 3, hidden_size=8))
    assert not small_batch_applies(network.train(), torch.device("cpu"))
    assert small_batch_applies(network.eval(), torch.device("cpu"))
