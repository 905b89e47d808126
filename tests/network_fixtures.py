"""Small networks for tests: NetworkConfig has no defaults (the recipe's live in TrainConfig), so
tests name a bare network (one head, no n-gram bag) and change what they test."""

from __future__ import annotations

from model.networks import NetworkConfig

BARE_NETWORK = {
    "hidden_size": 128,
    "num_layers": 1,
    "bidirectional": False,
    "dropout": 0.0,
    "nonlinearity": "tanh",
    "concat_tanh": False,
    "pooling": "last",
    "num_heads": 1,
    "ngram_order": 0,
    "ngram_buckets": 0,
    "ngram_dim": 0,
}


def network_config(architecture: str, vocab_size: int, num_labels: int, **changes) -> NetworkConfig:
    return NetworkConfig(architecture, vocab_size, num_labels, **{**BARE_NETWORK, **changes})
