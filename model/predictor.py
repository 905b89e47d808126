"""The batched predictor: names in, top-k labels with probabilities (or an abstention) out, on CPU or CUDA.

Names are read (`model.reading`), scored in one batched pass (`model.scoring`), and ranked under the
prior the caller asks for (`model.priors`); answers come back in input order. A name that cannot be
answered abstains in its place with a reason; only a bad argument raises.
"""

from __future__ import annotations

import functools
import itertools
import numbers
import operator
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from model.assets import DEFAULT_CHECKPOINT_PATH as DEFAULT_CHECKPOINT_PATH  # re-exported: part of this API
from model.checkpoint import Checkpoint, load_checkpoint
from model.encoder import NameEncoder, NameEncodingError
from model.evidence import Evidence
from model.explain import ExplainItem, Explanation, explain
from model.gc_pause import cyclic_gc_paused
from model.priors import DATASET_PRIOR, Prior, first_few, target_log_prior
from model.reading import NameReader
from model.scoring import NameScorer, NameScores
from model.scoring import RankedNames as RankedNames  # re-exported: part of this API
from model.scoring import RankedToken as RankedToken

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_TOP_K = 3  # labels per answer unless the caller asks otherwise, in every entry point
MAX_THREADS = 256  # torch intra-op threads a caller may ask for (0: torch's default)


class DeviceUnavailableError(RuntimeError):
    """CUDA was asked for on a machine without it: never a silent fall back to CPU."""


# Building a NamedTuple through tuple.__new__ skips its generated Python __new__ (the same tuple, for
# about half the cost): predict() builds one NamePrediction and top_k LabelProbability per name, the
# largest share of a big call's Python time (docs/benchmarks.md, "Where the time goes").
_new_tuple = tuple.__new__


class LabelProbability(NamedTuple):
    label: str
    probability: float
    log_probability: float


_new_label_probability = functools.partial(_new_tuple, LabelProbability)  # (label, p, log p) -> LabelProbability


# Why a name got no answer (README.md, "Abstention"): nothing readable; a script or letters no label is
# written in; a reading longer than the network reads; unlike any name (or a placeholder); below the
# caller's min_probability; a control character such as NUL in it (model.reading).
ABSTAIN_REASONS = (
    "no-letters",
    "unsupported-script",
    "unsupported-letters",
    "too-long",
    "not-a-name",
    "low-confidence",
    "control-characters",
)


class TokenPrediction(NamedTuple):
    """One part of a full name (a surname, a given name), as read and classified on its own."""

    text: str
    read_as: str
    script: str
    predictions: tuple[LabelProbability, ...]
    abstained: bool
    reason: str | None


class NamePrediction(NamedTuple):
    """The answer for one name: top-k labels (most probable first) or an abstention with its reason."""

    name: str
    predictions: tuple[LabelProbability, ...]  # empty when the name could not be read at all
    abstained: bool = False
    reason: str | None = None  # one of ABSTAIN_REASONS when abstained
    read_as: str = ""  # the Latin text the network read
    script: str = ""  # the writing system the name was written in
    tokens: tuple[TokenPrediction, ...] = ()  # a full name's parts; empty for a single name
    explanation: Explanation | None = None  # when asked for and answered: why (model.explain)


_new_name_prediction = functools.partial(_new_tuple, NamePrediction)  # the fields, in order -> NamePrediction


def resolve_device(device: str) -> torch.device:
    """auto -> CUDA when present else CPU; cuda without CUDA raises DeviceUnavailableError."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("device 'cuda' was asked for but torch sees no CUDA device")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class RankQuery(NamedTuple):
    """How one caller wants its answers: how many labels, under which prior, above which probability,
    and whether to explain each answered name's top label (and `explain_labels`) by occlusion."""

    top_k: int = DEFAULT_TOP_K
    prior: Prior = DATASET_PRIOR
    min_probability: float = 0.0
    explain: bool = False
    explain_labels: tuple[str, ...] = ()


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (Linux), else every core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def hold_threads(num_threads: int, large_batch_threads: int = 0) -> None:
    """Check both counts and hold torch's intra-op pool and numpy's BLAS pool to num_threads (0: as they are).

    Process-wide: on a small machine one intra-op thread beside the server's event loop beats two that
    spin-wait for a core (docs/benchmarks.md). numpy's BLAS, which runs the small-batch path's
    matmuls, keeps its own pool (one thread per core), so it is held to the same count. Setting it
    before any tensor work matters for large_batch_threads: once a second thread has run torch on
    several threads, GNU OpenMP counts more threads than cores and wakes a team by futex for every
    operation, and a larger count on the model thread then runs slower, not faster."""
    for argument, count in (("num_threads", num_threads), ("large_batch_threads", large_batch_threads)):
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_THREADS:
            # torch.set_num_threads raises for a negative count and crashes the process for a huge one
            raise ValueError(f"{argument} must be an integer from 0 to {MAX_THREADS}, got {count!r}")
    if num_threads:
        # Read first: a thread takes torch's process-wide default the first time it asks, and would
        # otherwise take it later, at its first parallel operation, perhaps while a large call has
        # raised it (model.scoring.intra_op_threads).
        torch.get_num_threads()
        torch.set_num_threads(num_threads)
        threadpool_limits(num_threads, user_api="blas")


class Predictor:
    """Serves one checkpoint: reads names, runs the network and the character model under
    inference_mode, weighs the evidence, ranks labels or abstains."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: str = "auto",
        max_batch_size: int = 2048,
        num_threads: int = 0,
        large_batch_threads: int = 0,
    ) -> None:
        """max_batch_size: names per network call (docs/benchmarks.md: why 2048). large_batch_threads:
        torch intra-op threads for a call of model.scoring.LARGE_BATCH_MIN_READINGS distinct readings
        or more on the CPU (0: num_threads for every call; docs/benchmarks.md, "Large batches on more
        cores")."""
        hold_threads(num_threads, large_batch_threads)
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self.encoder = NameEncoder(checkpoint.encoder_config)
        self.labels = checkpoint.labels
        self.network = checkpoint.build_network().to(self.device)
        self.language_model = checkpoint.build_language_model().to(self.device)
        self.evidence = Evidence(checkpoint.evidence_table, self.labels)
        self.reader = NameReader(
            self.evidence, checkpoint.encoder_config.max_length, checkpoint.novelty_config.placeholders
        )
        prior = torch.tensor(checkpoint.label_prior, dtype=torch.float64)
        self.log_prior = (prior / prior.sum()).log().float()
        self.scorer = NameScorer(
            self.reader,
            self.encoder,
            self.network,
            self.language_model,
            self.evidence,
            self.log_prior,
            checkpoint.novelty_config.threshold,
            self.device,
            max_batch_size,
            large_batch_threads,
        )

    @classmethod
    def from_path(
        cls,
        checkpoint_path: str | Path = DEFAULT_CHECKPOINT_PATH,
        device: str = "auto",
        num_threads: int = 0,
        large_batch_threads: int = 0,
    ) -> Predictor:
        """num_threads: torch intra-op threads and numpy BLAS threads for the process; 0 leaves their
        defaults. large_batch_threads: torch's for large calls (see __init__). The counts are set before
        the checkpoint is read, so no tensor work runs on more threads than asked."""
        # __init__ holds them again: cheap, and it must for callers that pass a Checkpoint of their own.
        hold_threads(num_threads, large_batch_threads)
        return cls(
            load_checkpoint(checkpoint_path),
            device=device,
            num_threads=num_threads,
            large_batch_threads=large_batch_threads,
        )

    def clear_caches(self) -> None:
        """Forget every name read and encoded so far: the next call reads its names as new ones (what a
        benchmark of names never seen before needs; the caches are bounded, so a service never must)."""
        self.reader.read.cache_clear()
        self.encoder.clear_cache()

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def model_id(self) -> str:
        """The served checkpoint's id, as every answer names it."""
        return self.checkpoint.model_id

    def log_prior_for(self, prior: Prior) -> torch.Tensor:
        """(L,) the log-prior answers are given under; raises PriorError (a ValueError) for a bad one."""
        return target_log_prior(prior, self.labels, self.log_prior)

    def check_top_k(self, top_k: int) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= self.num_labels:
            raise ValueError(f"top_k must be an integer between 1 and {self.num_labels}, got {top_k!r}")

    @staticmethod
    def check_min_probability(min_probability: float) -> None:
        """A floor of NaN or below 0 was taken as no floor, and one above 1 made every answer abstain."""
        number = isinstance(min_probability, numbers.Real) and not isinstance(min_probability, bool | np.bool_)
        if not number or not 0.0 <= min_probability <= 1.0:  # NaN fails the comparison too
            raise ValueError(f"min_probability must be a number from 0 to 1, got {min_probability!r}")

    def label_ids_of(self, labels: tuple[str, ...]) -> tuple[int, ...]:
        """Ids of `labels` into this model's labels; ValueError naming any it does not know."""
        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise ValueError(
                f"explain_labels names labels the model does not know: {first_few(unknown)}; it knows {list(self.labels)}"
            )
        return tuple(self.labels.index(label) for label in labels)

    def score(self, names: list[str]) -> NameScores:
        """The batch scored once, to be ranked under any top-k, prior and floor (the service's batcher
        ranks each request's rows with its own)."""
        for name in names:
            if not isinstance(name, str):
                raise NameEncodingError(f"name must be a string, got {type(name).__name__}")
        return self.scorer.score(names)

    def rank(
        self, names: list[str], top_k: int = DEFAULT_TOP_K, prior: Prior = DATASET_PRIOR, min_probability: float = 0.0
    ) -> RankedNames:
        """Answers as plain lists (see RankedNames), in input order."""
        self.check_top_k(top_k)
        self.check_min_probability(min_probability)
        log_prior = self.log_prior_for(prior)
        with cyclic_gc_paused():  # the burst of result lists is acyclic
            return self.score(names).rank(top_k, log_prior, min_probability)

    def rank_requests(self, requests: list[tuple[list[str], RankQuery]]) -> list[RankedNames]:
        """Several callers' names scored in one pass, each ranked under its own query (the service's
        micro-batches); a bad query raises before anything runs. Requests that ask the same are
        ranked together, once: per-request ranking cost more than the network for 64 one-name requests."""
        queries = {_query_key(query): query for _, query in requests}
        log_priors = {}
        for key, query in queries.items():
            self.check_top_k(query.top_k)
            self.check_min_probability(query.min_probability)
            log_priors[key] = self.log_prior_for(query.prior)
            self.label_ids_of(query.explain_labels)
        with cyclic_gc_paused():
            scores = self.score([name for names, _ in requests for name in names])
            ranked = {
                key: scores.rank(query.top_k, log_priors[key], query.min_probability) for key, query in queries.items()
            }
            answers, start = [], 0
            for names, query in requests:
                answers.append(ranked[_query_key(query)].rows(start, start + len(names)))
                start += len(names)
            if any(query.explain for _, query in requests):
                answers = self._explained(requests, answers, log_priors, scores.log_likelihoods)
            return answers

    def _explained(
        self,
        requests: list[tuple[list[str], RankQuery]],
        answers: list[RankedNames],
        log_priors: dict[object, torch.Tensor],
        log_likelihoods: torch.Tensor,
    ) -> list[RankedNames]:
        """The answers with each explained request's explanations: every answered name of every such
        request, with its (N, L) `log_likelihoods` row from the pass that answered it, and all their
        occluded variants in one scoring pass (model.explain)."""
        items: list[ExplainItem] = []
        start = 0
        for (names, query), answer in zip(requests, answers, strict=True):
            if query.explain:
                asked, log_prior = self.label_ids_of(query.explain_labels), log_priors[_query_key(query)]
                for row, (name, ids, reason) in enumerate(zip(names, answer.label_ids, answer.reasons, strict=True)):
                    if reason is None:
                        labels = tuple(dict.fromkeys((ids[0], *asked)))
                        items.append(ExplainItem(name, labels, log_prior, log_likelihoods[start + row]))
            start += len(names)
        explained = iter(explain(self.scorer, items))
        return [
            answer._replace(explanations=[None if reason else next(explained) for reason in answer.reasons])
            if query.explain
            else answer
            for (_, query), answer in zip(requests, answers, strict=True)
        ]

    def log_probabilities(
        self, names: list[str], prior: Prior = DATASET_PRIOR
    ) -> tuple[torch.Tensor, list[str | None]]:
        """(N, L) log-probabilities of every label per name, and each name's abstention reason (ignoring
        a probability floor): what evaluation reads."""
        scores = self.score(names)
        return torch.log_softmax(scores.log_likelihoods + self.log_prior_for(prior), dim=1), scores.reasons

    def predict(
        self,
        names: list[str],
        top_k: int = DEFAULT_TOP_K,
        prior: Prior = DATASET_PRIOR,
        min_probability: float = 0.0,
        explain: bool = False,
    ) -> list[NamePrediction]:
        """One answer per name, in input order: top-k labels, or an abstention with its reason; with
        `explain`, each answered name's top label explained (model.explain)."""
        with cyclic_gc_paused():  # one pause over both bursts: the ranked lists and these tuples
            ranked = (
                self.rank_requests([(names, RankQuery(top_k, prior, min_probability, explain=True))])[0]
                if explain
                else self.rank(names, top_k, prior, min_probability)
            )
            answers = self._name_predictions(names, ranked)
            del ranked  # its lists go before the collector comes back on, so they are never scanned
        return answers

    def _name_predictions(self, names: list[str], ranked: RankedNames) -> list[NamePrediction]:
        """The answers as NamePrediction tuples, built by C-level map/zip/islice with no Python frame
        per name or label (the comprehension it replaced: docs/benchmarks.md, "Large batches")."""
        explanations = ranked.explanations or itertools.repeat(None, len(names))
        token_prediction = self._token_prediction
        labels_flat = map(  # every name's labels, one after another
            _new_label_probability,
            zip(
                map(self.labels.__getitem__, itertools.chain.from_iterable(ranked.label_ids)),
                itertools.chain.from_iterable(ranked.probabilities),
                itertools.chain.from_iterable(ranked.log_probabilities),
                strict=True,
            ),
        )
        predictions = map(tuple, map(itertools.islice, itertools.repeat(labels_flat), map(len, ranked.label_ids)))
        tokens = [tuple(map(token_prediction, name_tokens)) if name_tokens else () for name_tokens in ranked.tokens]
        abstained = map(operator.is_not, ranked.reasons, itertools.repeat(None))
        columns = (names, predictions, abstained, ranked.reasons, ranked.read_as, ranked.scripts, tokens, explanations)
        return list(map(_new_name_prediction, zip(*columns, strict=True)))

    def _label_probabilities(
        self, ids: list[int], probs: list[float], log_probs: list[float]
    ) -> tuple[LabelProbability, ...]:
        return tuple(map(_new_label_probability, zip(map(self.labels.__getitem__, ids), probs, log_probs, strict=True)))

    def _token_prediction(self, token: RankedToken) -> TokenPrediction:
        return TokenPrediction(
            token.text,
            token.read_as,
            token.script,
            self._label_probabilities(token.label_ids, token.probabilities, token.log_probabilities),
            token.reason is not None,
            token.reason,
        )


def _query_key(query: RankQuery) -> object:
    """Queries that rank alike share a key (a prior map is keyed by its items)."""
    prior = query.prior if isinstance(query.prior, str) else tuple(sorted(query.prior.items()))
    return query.top_k, prior, query.min_probability
