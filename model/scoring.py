"""From names to label log-likelihoods: one batched pass of the network and the character model.

For a batch of names: read each (tokens, scripts, readings; cached), run every distinct reading
once through the network and the not-a-name character model (sorted by length, in chunks), then
give each token the log-likelihood log P(token | label) = log P(label | reading) - log P(label)
(Bayes' rule, up to a constant) plus its script and letter evidence. The label prior is added
once, when an answer is ranked (`NameScores.rank`), so a single token's answer is exactly the
network's calibrated answer times its evidence.

A full name's tokens are combined as weighted independent evidence: their log-likelihoods add, the
surname's with weight 1 and every other token's with `GIVEN_NAME_WEIGHT`. The network was trained
on surnames only, so it reads a given name poorly (mimesis's given names alone: top-1 below 0.2 for
Czech and German); counted in full, they made full names worse than their surname alone. Chinese,
Korean and Vietnamese given names are syllables like their surnames, so those labels count them in
full (`SURNAME_FIRST_GIVEN_NAME_WEIGHT`).

The surname is the part before a comma ("Tanaka, Hiroshi"). Without a comma, where the surname
stands depends on the label, so it is weighed per label: a label that writes the surname first
(`SURNAME_FIRST`: "Nguyen Van Minh", "Kim Min-jun") takes the first token as the surname with
probability 1 - `OTHER_ORDER`, every other label the last; each label's log-likelihood is the
mixture of its two readings. (Deciding once for all labels by the first token's own top label sent
"Ian Smith" and "Juan Smith" to Chinese: Ian and Juan read as Chinese syllables.) A full name written
in Han characters and kana alone has Japanese among those labels too (佐藤 健), given names in full.

A Latin token that is not a name (the character model says so) is left out of the combination and
listed as such; a token of fewer than three letters is never judged (`model.reading.MIN_JUDGED_LETTERS`).

A Han token read one way by Chinese and another by Japanese ("Tian Zhong" / "Tanaka") uses each
label's own reading: log P(token | l) = log P(l | reading_l) - log P(l), the readings taken as
equally likely a priori. (Weighing them by the character model, log P(reading_l), was tried: it
favours the shorter reading by about e^3.5 per letter, so every two-character name went Japanese.)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from model.encoder import NameEncoder, pad_sequences
from model.evidence import Evidence
from model.networks import NameClassifier
from model.novelty import CharLanguageModel
from model.reading import REASON_PRECEDENCE, NameReader, NameReading
from model.scripts import HAN, HIRAGANA, KATAKANA
from model.small_batch import SMALL_BATCH_MAX, SmallBatchScorer, small_batch_applies

if TYPE_CHECKING:
    import numpy.typing as npt

    from model.explain import Explanation

# Distinct readings (a full name's parts count one each) from which a pass on the CPU may take
# `NameScorer.large_batch_threads` intra-op threads: below it a second thread gained 1.00-1.22x in
# process, and a server pays for it in contention (docs/benchmarks.md, "Large batches on more cores").
LARGE_BATCH_MIN_READINGS = 512
_calling_thread = threading.local()  # `held`: this thread's calls keep the process's thread count


class RankedToken(NamedTuple):
    """One token of a full name with its own top labels (empty when it abstains)."""

    text: str
    read_as: str
    script: str
    label_ids: list[int]
    probabilities: list[float]
    log_probabilities: list[float]
    reason: str | None


class RankedNames(NamedTuple):
    """Answers for several names as plain lists, one entry per name in input order: top label ids
    (into the predictor's labels), probabilities and log-probabilities (empty when the name
    abstains, except for low-confidence), the abstention reason or None, what was read, the script,
    a full name's tokens (empty for a single token), and, when the query asked for them, each
    name's explanation (None when it abstains; the column is empty otherwise). For callers that
    write their own output."""

    label_ids: list[list[int]]
    probabilities: list[list[float]]
    log_probabilities: list[list[float]]
    reasons: list[str | None]
    read_as: list[str]
    scripts: list[str]
    tokens: list[tuple[RankedToken, ...]]
    explanations: Sequence[Explanation | None] = ()

    def rows(self, start: int, stop: int) -> RankedNames:
        """The answers of names start:stop."""
        return RankedNames._make(column[start:stop] for column in self)


GIVEN_NAME_WEIGHT = 0.25  # chosen on validation surnames with mimesis given names: 0 / 0.1 / 0.25 / 0.5 / 1
SURNAME_FIRST = ("Chinese", "Korean", "Vietnamese")  # written surname first, also in Latin letters
# Where no comma says which part is the surname, how likely a label's full name is written in the
# order it does not usually take ("Petrov Ivan" on a form, "Min-jun Kim" in the West); and the weight
# of a surname-first label's given names, made of the same syllables as its surnames, so read as
# well. Both chosen on validation full names (README.md, "Full names": 0.05-0.5 and 0.25-1 tried).
OTHER_ORDER = 0.1
SURNAME_FIRST_GIVEN_NAME_WEIGHT = 1.0
# In Han characters and kana, Japanese names are written surname first too (佐藤 健), with given names of
# the same characters as surnames: a full name written only in these scripts has Japanese among the
# surname-first labels. In Latin letters Japanese names often come given name first (Shinzo Abe).
SURNAME_FIRST_IN_JAPANESE_SCRIPTS = ("Japanese",)
JAPANESE_WRITING = frozenset({HAN, HIRAGANA, KATAKANA})
# Sums of up to this many parts are padded to one width together; a wider one is added with the sums of
# its own width, so one name of many parts (up to MAX_NAME_CHARACTERS as read) cannot pad a whole batch.
NARROW_SUM_WIDTH = 8
FEW_ROWS = 4  # rows up to which `_top` exponentiates with math.exp rather than two more torch calls


class NameScores(NamedTuple):
    """A batch scored: everything ranking needs, for any top-k, prior or probability floor."""

    readings: list[NameReading]
    log_likelihoods: torch.Tensor  # (N, L): weighted sum over the name's tokens of log P(token | label) + const
    token_log_likelihoods: torch.Tensor  # (T, L): each readable token's own, names in order
    token_starts: list[int]  # name i's readable tokens are rows token_starts[i]:token_starts[i + 1]
    token_reasons: list[tuple[str | None, ...]]  # per name, per token as written: why it is left out, or None
    reasons: list[str | None]  # why a name abstains whatever the prior: unreadable or not a name

    def rank(self, top_k: int, log_prior: torch.Tensor, min_probability: float = 0.0) -> RankedNames:
        """Top-k answers of every name under `log_prior` ((L,), -inf = impossible label)."""
        reasons = list(self.reasons)
        top_k = min(top_k, sum(map(math.isfinite, log_prior.tolist())))  # a prior may rule labels out: never answered
        label_ids, probabilities, log_probabilities = _top(self.log_likelihoods + log_prior, top_k)
        for row in [row for row, reason in enumerate(reasons) if reason is not None]:
            label_ids[row], probabilities[row], log_probabilities[row] = [], [], []
        if min_probability > 0:
            for row, reason in enumerate(reasons):
                if reason is None and probabilities[row][0] < min_probability:
                    reasons[row] = "low-confidence"
        tokens = self._ranked_tokens(top_k, log_prior)
        return RankedNames(
            label_ids,
            probabilities,
            log_probabilities,
            reasons,
            [reading.read_as for reading in self.readings],
            [reading.script for reading in self.readings],
            tokens,
        )

    def _ranked_tokens(self, top_k: int, log_prior: torch.Tensor) -> list[tuple[RankedToken, ...]]:
        """Each full name's tokens with their own top labels; () for a name of one token. The tokens of
        every name of up to FEW_ROWS readable tokens are ranked in one `_top` call (a call per name cost
        more than the network for a batch of full names), exponentiated by math.exp as `_top` does for so
        few rows, so a token's numbers do not depend on the batch; longer names keep a call each."""
        starts = self.token_starts
        tokens: list[tuple[RankedToken, ...]] = [()] * len(self.readings)
        full = [index for index, reading in enumerate(self.readings) if len(reading.tokens) > 1]
        few = [index for index in full if starts[index + 1] - starts[index] <= FEW_ROWS]
        rows = [row for index in few for row in range(starts[index], starts[index + 1])]
        ids, probabilities, log_probabilities = (
            _top(self.token_log_likelihoods[rows] + log_prior, top_k, exp_each=True) if rows else ([], [], [])
        )
        row = 0
        for index in few:
            stop = row + starts[index + 1] - starts[index]
            tokens[index] = self._tokens_of(index, ids[row:stop], probabilities[row:stop], log_probabilities[row:stop])
            row = stop
        for index in full:
            if starts[index + 1] - starts[index] > FEW_ROWS:
                scores = self.token_log_likelihoods[starts[index] : starts[index + 1]] + log_prior
                tokens[index] = self._tokens_of(index, *_top(scores, top_k))
        return tokens

    def _tokens_of(
        self, index: int, ids: list[list[int]], probs: list[list[float]], log_probs: list[list[float]]
    ) -> tuple[RankedToken, ...]:
        """Name `index`'s tokens with the top labels of its readable ones (a row each, in order); a token
        left out has none, nor does any token of a name that abstains as not a name."""
        shown = self.reasons[index] != "not-a-name"
        ranked, readable = [], 0
        for token, reason in zip(self.readings[index].tokens, self.token_reasons[index], strict=True):
            if token.reason is None:
                readable += 1
            if reason is not None or not shown:
                ranked.append(RankedToken(token.text, token.read_as, token.script, [], [], [], reason or "not-a-name"))
                continue
            row = readable - 1
            ranked.append(
                RankedToken(token.text, token.read_as, token.script, ids[row], probs[row], log_probs[row], None)
            )
        return tuple(ranked)


def _top(
    scores: torch.Tensor, top_k: int, exp_each: bool = False
) -> tuple[list[list[int]], list[list[float]], list[list[float]]]:
    """Per row: the top-k label ids, probabilities and log-probabilities of log_softmax(scores). Up to
    FEW_ROWS rows, or with `exp_each`, each probability is math.exp of its log-probability."""
    if scores.shape[0] == 0:
        return [], [], []
    top_log_probs, top_ids = F.log_softmax(scores, dim=1).topk(top_k, dim=1)
    log_probabilities = top_log_probs.tolist()
    if exp_each or scores.shape[0] <= FEW_ROWS:
        exp = math.exp
        return top_ids.tolist(), [[exp(value) for value in row] for row in log_probabilities], log_probabilities
    return top_ids.tolist(), top_log_probs.double().exp().tolist(), log_probabilities


class NameScorer:
    """Turns names into `NameScores` with one checkpoint's reader, network and character model."""

    def __init__(
        self,
        reader: NameReader,
        encoder: NameEncoder,
        network: NameClassifier,
        language_model: CharLanguageModel,
        evidence: Evidence,
        log_prior: torch.Tensor,
        novelty_threshold: float,
        device: torch.device,
        max_batch_size: int,
        large_batch_threads: int = 0,
    ) -> None:
        """large_batch_threads: torch intra-op threads for a pass over LARGE_BATCH_MIN_READINGS distinct
        readings or more (0: the process's count for every pass)."""
        self.reader, self.encoder, self.evidence = reader, encoder, evidence
        self.network, self.language_model = network, language_model
        self.log_prior, self.novelty_threshold = log_prior, novelty_threshold
        self.device, self.max_batch_size = device, max_batch_size
        self.large_batch_threads = large_batch_threads
        self.label_index = {label: index for index, label in enumerate(evidence.labels)}
        # The small-batch path looks the character model up in its dense table: none for a high order.
        self.small_batch = (
            SmallBatchScorer(network, language_model)
            if small_batch_applies(network, device) and language_model.has_dense_table
            else None
        )
        surname_first = torch.tensor([label in SURNAME_FIRST for label in evidence.labels])
        in_japanese_scripts = torch.tensor([label in SURNAME_FIRST_IN_JAPANESE_SCRIPTS for label in evidence.labels])
        # Per way of writing (Latin and the rest; Han and kana only), per label (L,): log P(the surname is
        # written first | label), log P(last | label), and the weight of a given name.
        self.orders = tuple(self._order(first) for first in (surname_first, surname_first | in_japanese_scripts))
        # the same, stacked (2, L) each and indexed by a name's way of writing: made once, not per batch
        self._order_tables = tuple(np.stack(columns) for columns in zip(*self.orders, strict=True))

    @staticmethod
    def _order(
        surname_first: torch.Tensor,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        first = torch.where(surname_first, 1 - OTHER_ORDER, OTHER_ORDER)
        weights = torch.where(surname_first, SURNAME_FIRST_GIVEN_NAME_WEIGHT, GIVEN_NAME_WEIGHT)
        return first.log().float().numpy(), (1 - first).log().float().numpy(), weights.float().numpy()

    def score(self, names: list[str]) -> NameScores:
        read = self.reader.read
        readings = [read(name) for name in names]
        row_of: dict[str, int] = {}  # each distinct reading runs once
        add_row = row_of.setdefault
        token_rows: list[int] = []
        token_starts = [0]
        with_features: list[tuple[int, tuple[str, ...]]] = []
        with_alternatives: list[tuple[int, int, tuple[str, ...]]] = []
        judged_tokens: list[int] = []
        for reading in readings:
            if reading.plain:  # most names: one token, nothing else to weigh (kept short: it runs per name)
                if reading.tokens[0].judged:
                    judged_tokens.append(len(token_rows))
                token_rows.append(add_row(reading.read_as, len(row_of)))
                token_starts.append(len(token_rows))
                continue
            for token in reading.tokens:
                if token.reason is not None:
                    continue
                if token.features:
                    with_features.append((len(token_rows), token.features))
                for label, texts in token.alternatives:
                    with_alternatives.append((len(token_rows), self.label_index[label], texts))
                if token.judged:
                    judged_tokens.append(len(token_rows))
                token_rows.append(add_row(token.read_as, len(row_of)))
                for _, texts in token.alternatives:
                    for text in texts:
                        add_row(text, len(row_of))
            token_starts.append(len(token_rows))
        net_log_probs, lm_log_probs, symbols = self._run(list(row_of))
        # Every token its own row, in order (distinct plain names): no gather, which cost a lone name
        # more than its ranking.
        in_order = len(row_of) == len(token_rows) and not with_alternatives
        token_ll = (net_log_probs if in_order else net_log_probs[token_rows]) - self.log_prior  # (T, L)
        # One indexed op each for the whole batch, not one per token: a torch op per token was most of
        # the time of a batch of Cyrillic or Han names (docs/benchmarks.md, "Full names in bulk").
        if with_alternatives:
            rows, label_ids, label_readings = zip(*with_alternatives, strict=True)
            alternative_labels = torch.tensor(label_ids)
            token_ll[torch.tensor(rows), alternative_labels] = (
                self._mean_log_probs(net_log_probs, row_of, alternative_labels, label_readings)
                - self.log_prior[alternative_labels]
            )
        if with_features:
            evidence = self.evidence.log_likelihood
            token_ll[torch.tensor([row for row, _ in with_features])] += torch.stack(
                [evidence(features) for _, features in with_features]
            )
        not_names = self._not_names(len(token_rows), judged_tokens, token_rows, lm_log_probs, symbols)
        name_ll, token_reasons, reasons = self._combine(readings, token_ll, token_starts, not_names)
        return NameScores(readings, name_ll, token_ll, token_starts, token_reasons, reasons)

    @staticmethod
    def _mean_log_probs(
        net_log_probs: torch.Tensor, row_of: dict[str, int], labels: torch.Tensor, readings: tuple[tuple[str, ...], ...]
    ) -> torch.Tensor:
        """Per alternative: the mean over its readings of the network's log-probability of its label
        (one reading: that reading's own, the same float)."""
        counts = [len(texts) for texts in readings]
        sources = torch.tensor([row_of[text] for texts in readings for text in texts])
        if max(counts) == 1:
            return net_log_probs[sources, labels]
        repeats = torch.tensor(counts)
        parts = net_log_probs[sources, labels.repeat_interleave(repeats)]
        owners = torch.arange(len(readings)).repeat_interleave(repeats)
        return torch.zeros(len(readings)).index_add_(0, owners, parts) / repeats

    def _combine(
        self, readings: list[NameReading], token_ll: torch.Tensor, token_starts: list[int], not_names: list[bool]
    ) -> tuple[torch.Tensor, list[tuple[str | None, ...]], list[str | None]]:
        """Each name's log-likelihoods from its tokens', why each token is left out, why a name abstains."""
        plain = [reading.plain for reading in readings]
        if all(plain):  # one token per name, in order: the tokens' rows are the names'
            name_ll = token_ll
        else:
            name_ll = torch.zeros(len(readings), token_ll.shape[1])
            starts = np.array(token_starts)
            single = np.flatnonzero(np.diff(starts) == 1)  # as index arrays: torch reads a list of ints slowly
            name_ll[torch.from_numpy(single)] = token_ll[torch.from_numpy(starts[single])]
        reasons: list[str | None] = [None] * len(readings)
        token_reasons: list[tuple[str | None, ...]] = [(None,)] * len(readings)
        flagged_names = {index for index, start in enumerate(token_starts[:-1]) if plain[index] and not_names[start]}
        for index in flagged_names:
            reasons[index], token_reasons[index] = "not-a-name", ("not-a-name",)
        summed: list[tuple[NameReading, tuple[str | None, ...], int]] = []  # names of several kept tokens
        summed_rows: list[int] = []
        for index in (index for index, is_plain in enumerate(plain) if not is_plain):
            reading, first, stop = readings[index], token_starts[index], token_starts[index + 1]
            flags = iter(not_names[first:stop])
            own = tuple(token.reason or ("not-a-name" if next(flags) else None) for token in reading.tokens)
            token_reasons[index] = own
            kept = not all(not_names[first:stop])  # some readable token is a name
            if stop - first > 1 and kept:
                summed.append((reading, own, first))
                summed_rows.append(index)
            if first == stop or (not kept and not reading.placeholder):
                # Nothing readable, or every readable part no name: the most telling reason of all its parts
                # ("Björk Guðmundsdóttir": unsupported-letters, the ð, rather than not-a-name, the Björk).
                reasons[index] = min(
                    (reason for reason in own if reason), key=REASON_PRECEDENCE.index, default="no-letters"
                )
            elif reading.placeholder:
                reasons[index] = "not-a-name"
        if summed:
            name_ll[summed_rows] = self._weighted_sums(summed, token_ll)
        return name_ll, token_reasons, reasons

    def _weighted_sums(
        self, names: list[tuple[NameReading, tuple[str | None, ...], int]], token_ll: torch.Tensor
    ) -> torch.Tensor:
        """(M, L): each full name's log-likelihoods, from (its reading, its tokens' reasons, its first
        token row): the surname's in full, other tokens' at each label's given-name weight. Before a
        comma, the surnames are known; otherwise each label mixes its two readings, first or last token
        the surname, by how that label orders names. Each sum adds its terms in a fixed order (by
        reading), so the same surname and given names give the same sum.

        Every sum of the batch is laid out as rows of (token row, surname or not), padded with a row of
        zeros, and added a column at a time in numpy: the same float32 operations in the same order as
        a loop per name, whose dozen torch ops made a batch of full names six times slower than one of
        surnames. The two readings are mixed by numpy's logaddexp, a loop per element, so a row's value
        does not depend on where it sits in the batch (torch's, vectorized, differs in the last bits
        between a batch's rows and a name alone, and from numpy's in about one mixed name in ten, by at
        most 1e-6 in a log-likelihood)."""
        sum_rows: list[list[int]] = []  # per sum: its token rows, in the order they are added
        sum_surnames: list[list[bool]] = []  # and whether each is a surname there
        mixed: list[bool] = []  # per name: two sums to mix (no comma) or one
        writing: list[int] = []  # per name: its index in self.orders (1: Han and kana only)
        for reading, own, first in names:
            kept = []  # (reading, position, token row) of each token that counts, in order
            row = first
            japanese_writing = True
            for position, token in enumerate(reading.tokens):
                if token.reason is None:
                    if own[position] is None:
                        kept.append((token.read_as, position, row))
                        japanese_writing = japanese_writing and JAPANESE_WRITING.issuperset(token.script.split("+"))
                    row += 1
            writing.append(int(japanese_writing))
            in_order = sorted(kept, key=itemgetter(0))  # stable: tied readings stay in position order
            sum_rows.append([row for _, _, row in in_order])
            if reading.surnames_before_comma:
                before = reading.surnames_before_comma
                surnames = {position for _, position, _ in kept if position < before} or {kept[0][1]}
                sum_surnames.append([position in surnames for _, position, _ in in_order])
                mixed.append(False)
            else:
                sum_rows.append(sum_rows[-1])
                first_position, last_position = kept[0][1], kept[-1][1]
                sum_surnames.append([position == first_position for _, position, _ in in_order])
                sum_surnames.append([position == last_position for _, position, _ in in_order])
                mixed.append(True)
        table = np.concatenate((token_ll.numpy(), np.zeros((1, token_ll.shape[1]), dtype=np.float32)))
        orders = np.array(writing)  # (M,)
        log_first, log_last, weights = self._order_tables
        sum_weights = weights[np.repeat(orders, [2 if two else 1 for two in mixed])]  # (S, L): each sum's name's
        if max(map(len, sum_rows)) <= NARROW_SUM_WIDTH:
            totals = self._padded_sums(table, sum_rows, sum_surnames, sum_weights)
        else:  # a name of many parts would pad every sum of the batch to its width: each width apart
            totals = np.empty((len(sum_rows), token_ll.shape[1]), dtype=np.float32)
            groups: dict[int, list[int]] = {}
            for index, sum_row in enumerate(sum_rows):
                groups.setdefault(max(len(sum_row), NARROW_SUM_WIDTH), []).append(index)
            for members in groups.values():
                picked = [sum_rows[index] for index in members], [sum_surnames[index] for index in members]
                totals[members] = self._padded_sums(table, *picked, sum_weights[members])
        first_sums = np.cumsum([0, *[2 if two else 1 for two in mixed[:-1]]])  # each name's first sum
        combined = totals[first_sums]
        two = np.array(mixed)
        if two.any():
            firsts, lasts = log_first[orders[two]], log_last[orders[two]]
            combined[two] = np.logaddexp(firsts + totals[first_sums[two]], lasts + totals[first_sums[two] + 1])
        return torch.from_numpy(combined)

    @staticmethod
    def _padded_sums(
        table: npt.NDArray[np.float32],
        sum_rows: list[list[int]],
        sum_surnames: list[list[bool]],
        sum_weights: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.float32]:
        """(S, L): each sum's weighted rows of `table` (its last row zeros, the padding) added a column at
        a time, padded to the widest of these sums; adding a zero leaves a float32 sum as it was."""
        width = max(map(len, sum_rows))
        padding = table.shape[0] - 1
        rows = np.array([[*sum_row, *[padding] * (width - len(sum_row))] for sum_row in sum_rows], dtype=np.intp)
        surname = np.array([[*flags, *[False] * (width - len(flags))] for flags in sum_surnames], dtype=bool)
        gathered = table[rows]  # (S, W, L)
        weighted = np.where(surname[:, :, np.newaxis], gathered, gathered * sum_weights[:, np.newaxis, :])
        totals = np.zeros((len(sum_rows), table.shape[1]), dtype=np.float32)
        for column in range(width):
            totals += weighted[:, column]
        return totals

    def _run(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Network log-probabilities (R, L), character-model log-probabilities (R,) and symbol counts
        (R,) of each reading, in input order."""
        sequences = self.encoder.encode_readings(texts)
        if self.small_batch is not None and len(sequences) <= SMALL_BATCH_MAX and not self.network.training:
            net_log_probs, lm_log_probs = self.small_batch.score(sequences)
            return net_log_probs, lm_log_probs, torch.from_numpy(np.array([len(ids) + 1.0 for ids in sequences]))
        net_log_probs = torch.empty(len(sequences), len(self.label_index))
        lm_log_probs = torch.empty(len(sequences))
        symbols = torch.empty(len(sequences))  # characters and the end of each name: what the mean is over
        order = sorted(range(len(sequences)), key=list(map(len, sequences)).__getitem__)
        large = (
            len(sequences) >= LARGE_BATCH_MIN_READINGS
            and self.device.type == "cpu"
            and not getattr(_calling_thread, "held", False)
        )
        with torch.inference_mode(), intra_op_threads(self.large_batch_threads if large else 0):
            for start in range(0, len(order), self.max_batch_size):
                chunk = order[start : start + self.max_batch_size]
                ids, lengths = pad_sequences([sequences[index] for index in chunk])
                ids = ids.to(self.device)
                rows = torch.tensor(chunk)
                net_log_probs[rows] = self.network(ids, lengths).float().cpu()
                lm_log_probs[rows] = self.language_model.total_log_probs(ids, lengths).float().cpu()
                symbols[rows] = lengths.float() + 1
        return net_log_probs, lm_log_probs, symbols

    def _not_names(
        self,
        num_tokens: int,
        judged_tokens: list[int],
        token_rows: list[int],
        lm_log_probs: torch.Tensor,
        symbols: torch.Tensor,
    ) -> list[bool]:
        """Whether each readable token is one the check judges (model.reading) and scores below the
        threshold per symbol."""
        flags = [False] * num_tokens
        if judged_tokens:
            # As Python floats: two conversions, where tensor comparisons cost four ops on every call.
            totals, counts, threshold = lm_log_probs.tolist(), symbols.tolist(), self.novelty_threshold
            for token in judged_tokens:
                row = token_rows[token]
                flags[token] = totals[row] < threshold * counts[row]
        return flags


@contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch intra-op threads, then give back the count before it (0: as is).

    The calling thread's OpenMP team changes, and so does torch's process-wide default, which a
    thread copies the first time it runs torch in parallel: a thread that must keep its count sets it
    first (model.predictor.hold_threads), and one that must never start a team of its own runs its
    calls in `on_process_threads`."""
    previous = torch.get_num_threads() if count > 0 else count  # most calls: nothing to change, nothing to ask
    if count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def on_process_threads() -> Iterator[None]:
    """Calls made inside, on this thread, keep the process's thread count however large: for a
    thread that must not run torch on a second team, such as the service's event loop (with two
    teams GNU OpenMP wakes every one by futex, and the model thread's large calls slow down;
    docs/benchmarks.md, "Large batches on more cores")."""
    before = getattr(_calling_thread, "held", False)
    _calling_thread.held = True
    try:
        yield
    finally:
        _calling_thread.held = before
