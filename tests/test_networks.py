import random
import string

import pytest
import torch

from model.assets import DEFAULT_CHECKPOINT_PATH
from model.checkpoint import load_checkpoint
from model.encoder import NameEncoder, pad_sequences
from model.gru_inference import FAST_GRU_MIN_BATCH, fast_gru_applies
from model.networks import HEAD_HASH_MULTIPLIERS, MAX_HEADS, POOLINGS, NetworkConfig, NgramHasher, build_network
from tests.network_fixtures import network_config

VOCAB = NameEncoder().vocab_size
CONFIGS = [
    network_config("concat", VOCAB, 5, hidden_size=16),
    network_config("concat", VOCAB, 5, hidden_size=16, concat_tanh=True),
    network_config("rnn", VOCAB, 5, hidden_size=16, nonlinearity="relu"),
    network_config("rnn", VOCAB, 5, hidden_size=16, num_layers=2, dropout=0.1),
    network_config("gru", VOCAB, 5, hidden_size=16, bidirectional=True, pooling="last_max"),
    network_config("gru", VOCAB, 5, hidden_size=8, bidirectional=True, pooling="last_max", num_heads=3),
    network_config("gru", VOCAB, 5, hidden_size=8, pooling="last"),
    network_config("lstm", VOCAB, 5, hidden_size=16, num_layers=2, bidirectional=True, dropout=0.2),
    network_config(
        "gru", VOCAB, 5, hidden_size=8, pooling="last_max", num_heads=2, ngram_order=5, ngram_buckets=257, ngram_dim=4
    ),
]


@pytest.mark.parametrize(
    "grad_mode", [torch.enable_grad, torch.inference_mode], ids=["training-path", "inference-path"]
)
@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: f"{c.architecture}-{c.num_layers}-{c.bidirectional}-{c.pooling}-{c.ngram_order}"
)
def test_network_output_is_padding_invariant(config, grad_mode):
    torch.manual_seed(0)
    network = build_network(config).eval()
    encoder = NameEncoder()
    short = encoder.encode("Li")
    with grad_mode():  # inference mode takes the hand-written GRU where it applies (batches past the gate)
        alone = network(*pad_sequences([short]))
        in_batch = network(*pad_sequences([encoder.encode("Wolfeschlegelsteinhausen"), short, encoder.encode("Abe")]))
        in_big_batch = network(*pad_sequences([encoder.encode("Wolfeschlegelsteinhausen"), short] * FAST_GRU_MIN_BATCH))
    assert alone.shape == (1, 5)
    torch.testing.assert_close(in_batch[1:2], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(in_big_batch[1:2], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("config", CONFIGS[:1] + CONFIGS[-2:], ids=lambda c: c.architecture)
def test_network_returns_log_probabilities(config):
    network = build_network(config).eval()
    log_probs = network(*NameEncoder().encode_batch(["Hinton", "Nguyen"]))
    assert torch.allclose(log_probs.exp().sum(dim=1), torch.ones(2), atol=1e-5)


def test_network_calibration_buffers_shift_and_sharpen():
    network = build_network(CONFIGS[4]).eval()
    batch = NameEncoder().encode_batch(["Hinton"])
    before = network(*batch)
    network.label_bias[2] = 5.0
    network.temperature.fill_(0.5)
    after = network(*batch)
    assert after.argmax().item() == 2
    assert torch.allclose(after.exp().sum(), torch.tensor(1.0), atol=1e-5)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"architecture": "transformer"}, "architecture"),
        ({"nonlinearity": "sigmoid"}, "nonlinearity"),
        ({"pooling": "mean"}, "pooling"),
        ({"num_labels": 1}, "2 labels"),
        ({"dropout": 1.0}, "dropout"),
        ({"hidden_size": 0}, "positive"),
    ],
)
def test_network_config_rejects_invalid_values(changes, message):
    values = {"architecture": "gru", "vocab_size": VOCAB, "num_labels": 3, **changes}
    with pytest.raises(ValueError, match=message):
        network_config(**values)


def test_network_config_from_dict_rejects_unknown_keys():
    values = {**CONFIGS[0].to_dict(), "attention": True}
    with pytest.raises(ValueError, match="attention"):
        NetworkConfig.from_dict(values)


def test_network_config_from_dict_rejects_a_record_with_a_missing_key():
    values = CONFIGS[0].to_dict()
    del values["pooling"]
    with pytest.raises(ValueError, match="missing: \\['pooling'\\]"):
        NetworkConfig.from_dict(values)


def test_network_heads_are_averaged_in_probability_space():
    config = network_config("gru", VOCAB, 4, hidden_size=8, num_heads=3)
    network = build_network(config).eval()
    batch = NameEncoder().encode_batch(["Hinton", "Li"])
    head_probs = network.head_log_probs(*batch).exp()  # (K, B, L)
    assert head_probs.shape == (3, 2, 4)
    assert not torch.allclose(head_probs[0], head_probs[1])  # heads start from different weights
    torch.testing.assert_close(network(*batch).exp(), head_probs.mean(dim=0))


def test_network_config_rejects_heads_for_concat_cell_and_more_heads_than_hashes():
    with pytest.raises(ValueError, match="one head"):
        network_config("concat", VOCAB, 3, num_heads=2)
    with pytest.raises(ValueError, match="num_heads must be at most 8"):
        network_config("gru", VOCAB, 3, num_heads=9)


def test_packed_max_pooling_matches_max_over_padded_outputs():
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    network = build_network(
        network_config("gru", VOCAB, 3, hidden_size=6, bidirectional=True, pooling="last_max")
    ).eval()
    ids, lengths = NameEncoder().encode_batch(["Li", "Wolfeschlegel", "Abe", "Nguyen"])
    packed = pack_padded_sequence(
        torch.nn.functional.one_hot(ids, VOCAB).float(), lengths, batch_first=True, enforce_sorted=False
    )
    outputs, final_state = network.rnn(packed)
    padded, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=float("-inf"))
    features = torch.cat((final_state[0], final_state[1], padded.max(dim=1).values), dim=1)
    expected = torch.log_softmax(network.heads[0].linear(features), dim=1)
    torch.testing.assert_close(network.head_log_probs(ids, lengths)[0], expected)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_inference_gru_matches_nn_gru_on_every_length(pooling):
    """The CPU inference path writes nn.GRU's equations out by hand; it must give nn.GRU's features."""
    torch.manual_seed(0)
    network = build_network(network_config("gru", VOCAB, 4, hidden_size=32, pooling=pooling)).eval()
    names = ["A", "Li", "Abe", "Nguyen", "Kowalski", "O'Neil", "Wolfeschlegelsteinhausenbergerdorff", "Li", "Xu"]
    ids, lengths = NameEncoder().encode_batch(names)
    with torch.inference_mode():
        by_hand = network.sequence_features(ids, lengths, fast_gru=True)
        by_module = network.sequence_features(ids, lengths, fast_gru=False)
    assert by_hand.shape == (len(names), 32 * (2 if pooling == "last_max" else 1))
    torch.testing.assert_close(by_hand, by_module, atol=1e-6, rtol=0)


def test_inference_gru_matches_nn_gru_for_the_shipped_network_on_a_large_batch():
    """The trained weights and a batch of the size the predictor runs (one chunk of 2,048 names of
    1 to 24 letters): the hand-written GRU stays within 1e-6 of nn.GRU, where rounding has many
    steps and rows to add up in."""
    checkpoint = load_checkpoint(DEFAULT_CHECKPOINT_PATH)
    network, encoder = checkpoint.build_network(), NameEncoder(checkpoint.encoder_config)
    generator = random.Random(0)
    names = ["".join(generator.choices(string.ascii_lowercase, k=generator.randint(1, 24))) for _ in range(2048)]
    ids, lengths = pad_sequences([encoder.encode(name) for name in names])
    with torch.inference_mode():
        by_hand = network.sequence_features(ids, lengths, fast_gru=True)
        by_module = network.sequence_features(ids, lengths, fast_gru=False)
    torch.testing.assert_close(by_hand, by_module, atol=1e-6, rtol=0)


def test_inference_gru_is_taken_from_the_gated_batch_size_on_the_cpu_outside_autograd():
    gru = build_network(network_config("gru", VOCAB, 4, hidden_size=8)).rnn
    cpu = torch.device("cpu")
    with torch.inference_mode():
        assert not fast_gru_applies(gru, FAST_GRU_MIN_BATCH - 1, cpu)
        assert fast_gru_applies(gru, FAST_GRU_MIN_BATCH, cpu)
        assert not fast_gru_applies(gru, FAST_GRU_MIN_BATCH, torch.device("cuda"))
    with torch.enable_grad():
        assert not fast_gru_applies(gru, FAST_GRU_MIN_BATCH, cpu)


def test_inference_gru_is_left_to_nn_gru_for_layers_directions_and_other_cells():
    for config in (
        network_config("gru", VOCAB, 3, num_layers=2),
        network_config("gru", VOCAB, 3, bidirectional=True),
        network_config("lstm", VOCAB, 3),
        network_config("rnn", VOCAB, 3),
    ):
        network = build_network(config).eval()
        with torch.inference_mode():
            assert not fast_gru_applies(network.rnn, FAST_GRU_MIN_BATCH, torch.device("cpu"))
            with pytest.raises(ValueError, match="one-layer, one-way"):
                network.sequence_features(*NameEncoder().encode_batch(["Li"]), fast_gru=True)


def test_ngram_bag_reads_every_marked_fragment_of_each_name_and_no_padding():
    hasher = build_network(CONFIGS[-1]).ngram_hasher
    encoder = NameEncoder()
    ids, lengths = pad_sequences([encoder.encode("Li"), encoder.encode("Nguyen")])
    codes, offsets = hasher.codes(ids, lengths)
    # "^Li$" has 4 + 3 + 2 + 1 fragments of 1..4 characters (none of 5); "^Nguyen$" has 8 + 7 + 6 + 5 + 4.
    assert offsets.tolist() == [0, 10]
    assert codes.shape == (10 + 30,)
    for head in range(2):
        buckets = hasher.bucket_ids(codes, head)
        assert int(buckets.min()) >= 0 and int(buckets.max()) < 257
    alone, _ = hasher.codes(*pad_sequences([encoder.encode("Li")]))
    assert codes[:10].tolist() == alone.tolist()


def reference_buckets(hasher, ids: list[int], head: int) -> list[int]:
    """The hasher's rule in plain Python integers (no int64 wrap possible): every n-gram of
    ^ids$, orders 1..order, each order left to right; h = code * multiplier mod 2**32 and
    bucket = h * buckets // 2**32."""
    marked = [hasher.begin_id, *ids, hasher.end_id]
    buckets = []
    for n in range(1, hasher.order + 1):
        for start in range(len(marked) - n + 1):
            code = 0
            for symbol in marked[start : start + n]:
                code = code * hasher.base + symbol
            buckets.append((code * HEAD_HASH_MULTIPLIERS[head] % 2**32) * hasher.buckets // 2**32)
    return buckets


@pytest.mark.parametrize("head", [0, 1])
def test_ngram_hasher_matches_the_rule_in_plain_integers_for_every_name_length(head):
    hasher = build_network(CONFIGS[-1]).ngram_hasher
    encoder = NameEncoder()
    names = ["A", "Li", "Abe", "Nguyen", "Kowalski", "Wolfeschlegelsteinhausen"]
    sequences = [encoder.encode(name) for name in names]
    codes, offsets = hasher.codes(*pad_sequences(sequences))
    buckets = hasher.bucket_ids(codes, head)
    ends = [*offsets.tolist()[1:], len(buckets)]
    for sequence, start, end in zip(sequences, offsets.tolist(), ends, strict=True):
        assert sorted(buckets[start:end].tolist()) == sorted(reference_buckets(hasher, list(sequence), head))


def test_ngram_hasher_stays_exact_in_int64_at_the_longest_allowed_order_and_most_buckets():
    config = network_config("gru", VOCAB, 3, ngram_order=5, ngram_buckets=2**31 - 1, ngram_dim=1)
    hasher = NgramHasher(VOCAB, config.ngram_order, config.ngram_buckets)  # no table of 2**31 rows
    largest = [VOCAB - 1] * 12  # the largest codes the alphabet can make
    codes, _ = hasher.codes(*pad_sequences([largest]))
    for head in range(MAX_HEADS):
        assert hasher.bucket_ids(codes, head).tolist() == reference_buckets(hasher, largest, head)


def test_ngram_heads_share_buckets_between_different_ngrams():
    """What makes heads differ: two n-grams that collide in one head's buckets rarely do in another's."""
    hasher = NgramHasher(VOCAB, order=3, buckets=64)
    encoder = NameEncoder()
    codes, _ = hasher.codes(*pad_sequences([encoder.encode(name) for name in ["Kowalski", "Nguyen", "Schmidhuber"]]))
    codes = codes.unique()
    first, second = hasher.bucket_ids(codes, 0), hasher.bucket_ids(codes, 1)
    pairs_first = {(a, b) for a in range(len(codes)) for b in range(a) if first[a] == first[b]}
    pairs_second = {(a, b) for a in range(len(codes)) for b in range(a) if second[a] == second[b]}
    assert pairs_first and pairs_second  # 64 buckets for more n-grams: both heads have collisions
    assert len(pairs_first & pairs_second) < 0.2 * min(len(pairs_first), len(pairs_second))


@pytest.mark.parametrize("batch", [["A"], ["X", "O"], ["O", "Li"], ["A", "Wolfeschlegelsteinhausen"]])
def test_network_with_ngram_bag_reads_one_letter_names_alone_and_in_any_batch(batch):
    network = build_network(CONFIGS[-1]).eval()
    encoder = NameEncoder()
    in_batch = network(*pad_sequences([encoder.encode(name) for name in batch]))
    alone = network(*pad_sequences([encoder.encode(batch[0])]))
    torch.testing.assert_close(in_batch[:1], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "changes",
    [{"architecture": "concat"}, {"ngram_order": 6}, {"ngram_buckets": 0}, {"ngram_buckets": 2**31}, {"ngram_dim": 0}],
)
def test_network_config_rejects_invalid_ngram_bags(changes):
    values = {
        "architecture": "gru",
        "vocab_size": VOCAB,
        "num_labels": 3,
        "ngram_order": 3,
        "ngram_buckets": 64,
        "ngram_dim": 4,
        **changes,
    }
    with pytest.raises(ValueError, match=r"n-gram|ngram|too long|below 2\*\*31"):
        network_config(**values)
