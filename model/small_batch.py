"""Small batches without torch's per-op cost: the shipped network and the not-a-name model in numpy.

A lone name (a single-name request, the CLI, `predict([name])`) runs the same few hundred torch
ops as a batch of thousands, and at one name each op's dispatch costs far more than its
arithmetic: one name a call ran at about a quarter of the tutorial's own per-name loop
(docs/benchmarks.md, measurement 1). Up to SMALL_BATCH_MAX names the same holds in part, since a
numpy call costs less than a torch op. Here the same equations run on numpy views of the model's
own weights: the GRU over the names' characters (the input side of a one-hot character is one
column of W_ih, so it is looked up), the max over steps, each head's n-gram bag (coded and hashed
exactly as `NgramHasher` does) and linear layer, the heads' mean, the calibration; and the
character model's sum of one table lookup per character. One or two names run one by one; more run
together, longest first, so the names still being read at a step are the batch's first rows; from
TORCH_SIGMOID_MIN_BATCH names their steps take the sigmoids from torch, on the same memory (numpy's
tanh, the costliest call of a step, took 2.7 times torch's sigmoid on 100 x 128 floats). In
float32, as torch computes; tests hold it to the torch path within 1e-5 on log-probabilities.

It covers the architecture the trainer ships (a one-layer, one-way GRU, `last` or `last_max`
pooling, with or without n-gram heads) on the CPU; any other network keeps the torch path.
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypeGuard, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from model.networks import HEAD_HASH_MULTIPLIERS, ClassifierHead, NameClassifier, RecurrentClassifier
from model.novelty import CharLanguageModel

# Distinct readings per call (what the scorer runs: a repeated name once, each part of a full name on
# its own) up to which the numpy path is taken. Above it torch's ops are spread over enough names to be
# cheaper (the crossover, measured in process: docs/benchmarks.md, "Figures behind the code").
SMALL_BATCH_MAX = 256
# Names per call up to which they run one by one: the batch's set-up (padding, sorting, the n-gram
# matrices) costs more than it saves for one or two names.
LONE_NAMES_MAX = 2
# Names per call from which the batched GRU takes its sigmoids from torch rather than numpy's tanh: below,
# the torch call's fixed cost outweighs what it saves (docs/benchmarks.md, "Small batches in numpy").
TORCH_SIGMOID_MIN_BATCH = 48

Array = npt.NDArray[np.float32]
_CPU = torch.device("cpu")


class GruLayout(NamedTuple):
    """One GRU's weights as the numpy steps read them. Per character, a gate's input side is a row
    (W_ih one_hot(c) + b_ih, with b_hr and b_hz added to the reset and update gates', so the
    recurrent side adds none there). numpy's steps take a sigmoid as (tanh(x / 2) + 1) / 2 (one call
    where 1 / (1 + exp(-x)) takes four), so the gates' columns are halved; torch's steps take the
    candidate's tanh as 2 * sigmoid(2c) - 1, so its columns are doubled. W_hh is a contiguous copy
    (a matmul on it took 10% less of a step than on a slice); the lone path's carries b_hn as one more
    row, picked up by a constant 1 after the state."""

    gates_halved: Array  # (V, 2H)
    candidate: Array  # (V, H)
    recurrent_halved: Array  # (H, 3H), the reset and update gates' columns halved
    candidate_bias: Array  # (H,) b_hn
    recurrent_with_bias_row: Array  # (H + 1, 3H): recurrent_halved, then b_hn under the candidate's columns
    gates: Array  # (V, 2H)
    candidate_doubled: Array  # (V, H)
    recurrent_doubled: Array  # (H, 3H), the candidate's columns doubled
    candidate_bias_doubled: Array  # (H,)


def small_batch_applies(network: NameClassifier, device: torch.device) -> TypeGuard[RecurrentClassifier]:
    """Whether `SmallBatchScorer` can stand in for `network`: the shipped kind, on the CPU."""
    if device.type != "cpu" or not isinstance(network, RecurrentClassifier):
        return False
    rnn = network.rnn
    config = network.config
    return (
        isinstance(rnn, nn.GRU)
        and rnn.num_layers == 1
        and not rnn.bidirectional
        and config.pooling in ("last", "last_max")
        and not network.training
    )


class SmallBatchScorer:
    """The network's calibrated log-probabilities and the character model's totals, name by name.

    Every array is a float32 view of the module's own parameter or buffer (no copy), so weights
    changed in place after construction, as a test or a fine-tuning step may do, are what it reads;
    the GRU's step layout, the one thing derived from them, is rebuilt when a GRU weight's version
    changes; the character model's table is the one the torch path caches too."""

    def __init__(self, network: RecurrentClassifier, language_model: CharLanguageModel) -> None:
        def view(tensor: object) -> Array:  # nn.GRU sets its weights by name: the stubs type them loosely
            return cast(torch.Tensor, tensor).detach().numpy()

        gru = network.rnn
        assert isinstance(gru, nn.GRU)  # small_batch_applies held
        self.network = network
        self.hidden_size = gru.hidden_size
        self.weight_ih_t = view(gru.weight_ih_l0).T  # (V, 3H): row c is W_ih one_hot(c)
        self.bias_ih = view(gru.bias_ih_l0)
        self.weight_hh_t = view(gru.weight_hh_l0).T  # (H, 3H)
        self.bias_hh = view(gru.bias_hh_l0)
        self.with_max = network.config.pooling == "last_max"
        hasher = network.ngram_hasher
        self.ngram = (hasher.order, hasher.buckets, hasher.begin_id, hasher.end_id, hasher.base) if hasher else None
        self.heads = [
            (
                view(head.ngram_table.weight) if head.ngram_table is not None else None,
                view(head.linear.weight),
                view(head.linear.bias),
            )
            for head in cast(list[ClassifierHead], list(network.heads))
        ]
        # The same tables as torch tensors (shared storage): torch's embedding_bag gathers and averages a
        # batch's rows in one call, a third of numpy's gather and reduceat at 100 names.
        self.bag_tables = [
            head.ngram_table.weight.detach() if head.ngram_table is not None else None
            for head in cast(list[ClassifierHead], list(network.heads))
        ]
        self.label_bias = view(network.label_bias)
        self.temperature = view(network.temperature)  # 0-d
        self._gru_parameters = (gru.weight_ih_l0, gru.bias_ih_l0, gru.weight_hh_l0, gru.bias_hh_l0)
        # The GRU's weight versions and its step layout (`_prepared_gru`); None until the first call.
        self._gru_layout: tuple[tuple[int, ...], GruLayout] | None = None
        lm_config = language_model.config
        self.language_model = language_model
        self.lm_order, self.lm_base = lm_config.order, lm_config.base
        self.lm_begin, self.lm_end = lm_config.begin_id, lm_config.end_id
        # The character model's table and its numpy view, swapped as one reference: two threads on a first
        # call must never see a new table paired with the old (empty) view.
        self._lm_table: tuple[torch.Tensor | None, Array] = (None, np.empty(0, dtype=np.float32))

    def score(self, sequences: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) calibrated log-probabilities and (B,) character-model log-probabilities, in order.
        Together, each step is a dozen numpy calls on views, whatever the batch size."""
        if not sequences:  # every name of the call abstained before the network
            return torch.empty(0, self.network.config.num_labels), torch.empty(0)
        if len(sequences) <= LONE_NAMES_MAX:
            return self._score_one_by_one(sequences)
        order = sorted(range(len(sequences)), key=lambda index: -len(sequences[index]))
        lengths = [len(sequences[index]) for index in order]
        steps = lengths[0]
        padded = np.array(
            [[*sequences[index], *[0] * (steps - length)] for index, length in zip(order, lengths, strict=True)],
            dtype=np.intp,
        )
        padded = padded.reshape(len(sequences), steps)  # (B, T) character ids, longest name first, 0 after each end
        net = np.empty((len(sequences), self.network.config.num_labels), dtype=np.float32)
        net[order] = self._network_log_probs(padded, lengths, np.float32(self.temperature))
        lm = np.empty(len(sequences), dtype=np.float32)
        lm[order] = self._total_log_probs(padded, np.array(lengths, dtype=np.intp), self._language_model_table())
        return torch.from_numpy(net), torch.from_numpy(lm)

    def _score_one_by_one(self, sequences: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        temperature = np.float32(self.temperature)
        net = np.stack([self._lone_network_log_probs(ids, temperature) for ids in sequences])
        table = self._language_model_table()
        lm = np.array([self._lone_total_log_prob(ids, table) for ids in sequences], dtype=np.float32)
        return torch.from_numpy(net), torch.from_numpy(lm)

    def _prepared_gru(self) -> GruLayout:
        """The GRU's weights laid out for one step with the fewest numpy calls (`GruLayout`), rebuilt
        whenever a weight has changed in place since they were last laid out."""
        versions = tuple(parameter._version for parameter in self._gru_parameters)
        if self._gru_layout is None or self._gru_layout[0] != versions:
            size, two = self.hidden_size, 2 * self.hidden_size
            input_gates = self.weight_ih_t + self.bias_ih
            input_gates[:, :two] += self.bias_hh[:two]  # b_hr and b_hz, so the recurrent side has no bias there
            halved = self.weight_hh_t.copy()  # (H, 3H), contiguous
            halved[:, :two] *= 0.5
            doubled = self.weight_hh_t.copy()
            doubled[:, two:] *= 2
            candidate_bias = self.bias_hh[two:]  # b_hn
            # (H + 1, 3H), laid out as numpy's vstack lays out W_hh^T (column-major), so the lone path's
            # matmul sums in the order it always has
            with_bias_row = np.vstack((self.weight_hh_t, self.bias_hh[np.newaxis, :]))
            with_bias_row[:, :two] *= 0.5
            with_bias_row[size, :two] = 0  # b_hr and b_hz are in the input side already
            layout = GruLayout(
                gates_halved=np.ascontiguousarray(input_gates[:, :two] * 0.5),
                candidate=np.ascontiguousarray(input_gates[:, two:]),
                recurrent_halved=halved,
                candidate_bias=candidate_bias.copy(),
                recurrent_with_bias_row=with_bias_row,
                gates=np.ascontiguousarray(input_gates[:, :two]),
                candidate_doubled=np.ascontiguousarray(input_gates[:, two:] * 2),
                recurrent_doubled=doubled,
                candidate_bias_doubled=candidate_bias * 2,
            )
            self._gru_layout = (versions, layout)
        return self._gru_layout[1]

    def _features(self, padded: npt.NDArray[np.intp], lengths: list[int]) -> Array:
        """(B, H) last states, with (B, H) maxima over steps beside them for `last_max` pooling, of
        names sorted longest first: the names still being read at a step are the first rows.

        From TORCH_SIGMOID_MIN_BATCH names the gates' sigmoids are torch's, on the same memory, and
        the candidate's tanh is 2 * sigmoid(2c) - 1 (the 2 in its weights); below, numpy's tanh."""
        size, (batch, steps) = self.hidden_size, padded.shape
        layout = self._prepared_gru()
        torch_sigmoid = batch >= TORCH_SIGMOID_MIN_BATCH
        if torch_sigmoid:
            gates_of_char, candidate_of_char = layout.gates, layout.candidate_doubled
            weight, candidate_bias = layout.recurrent_doubled, layout.candidate_bias_doubled
        else:
            gates_of_char, candidate_of_char = layout.gates_halved, layout.candidate
            weight, candidate_bias = layout.recurrent_halved, layout.candidate_bias
        by_step = padded.T  # step-major, so each step's rows are contiguous
        step_gates_all, step_candidate_all = gates_of_char[by_step], candidate_of_char[by_step]  # (T, B, 2H), (T, B, H)
        # The state stays contiguous (the lone path's trailing 1 would make every row-slice strided,
        # about 15% of a step): W_hh h is one matmul and b_hn is added to the candidate's part.
        states = np.zeros((batch, size), dtype=np.float32)
        hidden = np.empty((batch, 3 * size), dtype=np.float32)  # W_hh h
        gates = np.empty((batch, 2 * size), dtype=np.float32)
        candidate = np.empty((batch, size), dtype=np.float32)
        gates_tensor = torch.from_numpy(gates) if torch_sigmoid else None  # the same memory, for torch's sigmoids
        candidate_tensor = torch.from_numpy(candidate) if torch_sigmoid else None
        running_max = np.full((batch, size), -np.inf, dtype=np.float32) if self.with_max else None
        active, viewed = batch, 0  # names still being read; names the step's views hold
        for step in range(steps):
            while lengths[active - 1] <= step:  # names that have ended keep their last state
                active -= 1
            if active != viewed:  # views made once per length, not once per step
                viewed = active
                state, step_max = states[:active], running_max[:active] if running_max is not None else None
                step_hidden, step_gates, step_candidate = hidden[:active], gates[:active], candidate[:active]
                hidden_gates, hidden_candidate = step_hidden[:, : 2 * size], step_hidden[:, 2 * size :]
                reset, update = step_gates[:, :size], step_gates[:, size:]
                if gates_tensor is not None and candidate_tensor is not None:
                    gates_view, candidate_view = gates_tensor[:active], candidate_tensor[:active]
            np.matmul(state, weight, out=step_hidden)
            np.add(step_gates_all[step, :active], hidden_gates, out=step_gates)
            if torch_sigmoid:
                gates_view.sigmoid_()  # r, z
            else:
                np.tanh(step_gates, out=step_gates)  # r, z = sigmoid(x) = (tanh(x / 2) + 1) / 2
                step_gates *= 0.5
                step_gates += 0.5
            hidden_candidate += candidate_bias
            np.multiply(reset, hidden_candidate, out=step_candidate)
            step_candidate += step_candidate_all[step, :active]
            if torch_sigmoid:  # the candidate's pre-activation is doubled: tanh(c) = 2 * sigmoid(2c) - 1
                candidate_view.sigmoid_()
                step_candidate *= 2
                step_candidate -= 1
            else:
                np.tanh(step_candidate, out=step_candidate)  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
            state -= step_candidate
            state *= update
            state += step_candidate  # h' = (1 - z) * n + z * h
            if step_max is not None:
                np.maximum(step_max, state, out=step_max)
        return states if running_max is None else np.concatenate((states, running_max), axis=1)

    def _bags(self, padded: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]) -> list[Array]:
        """Each head's (B, D) bag: the mean of its table's rows at the buckets of each name's n-grams
        of "^name$", coded and hashed exactly as NgramHasher does (the same int64 arithmetic)."""
        assert self.ngram is not None
        order, buckets, begin_id, end_id, base = self.ngram
        batch, steps = padded.shape
        marked = np.zeros((batch, steps + 2), dtype=np.int64)
        marked[:, 0] = begin_id
        marked[:, 1 : steps + 1] = padded
        marked[np.arange(batch), lengths + 1] = end_id
        codes, parts, ends = marked, [marked], [np.arange(1, steps + 3)]
        for n in range(2, min(order, steps + 2) + 1):
            codes = codes[:, :-1] * base + marked[:, n - 1 :]  # n-grams starting at each step
            parts.append(codes)
            ends.append(np.arange(n, steps + 3))
        valid = np.concatenate(ends) <= (lengths + 2)[:, np.newaxis]  # the n-gram ends inside "^name$"
        counts = valid.sum(axis=1)
        flat_codes = np.concatenate(parts, axis=1)[valid]  # name by name
        offsets = torch.from_numpy(np.cumsum(counts) - counts)
        bags = []
        for table, multiplier in zip(self.bag_tables, HEAD_HASH_MULTIPLIERS, strict=False):
            assert table is not None
            bucket_ids = torch.from_numpy((((flat_codes * multiplier) & 0xFFFFFFFF) * buckets) >> 32)
            bags.append(F.embedding_bag(bucket_ids, table, offsets, mode="mean").numpy())  # as EmbeddingBag
        return bags

    def _language_model_table(self) -> Array:
        """The character model's conditional table (built once by the model itself), as a numpy view."""
        table = self.language_model._conditional_table(_CPU)
        source, view = self._lm_table
        if table is not source:
            view = table.numpy()
            self._lm_table = (table, view)
        return view

    def _network_log_probs(self, padded: npt.NDArray[np.intp], lengths: list[int], temperature: np.float32) -> Array:
        features = self._features(padded, lengths)
        bags = (
            self._bags(padded, np.array(lengths, dtype=np.intp)) if self.ngram is not None else [None] * len(self.heads)
        )
        logits = []
        for (table, weight, bias), bag in zip(self.heads, bags, strict=True):
            inputs = np.concatenate((features, bag), axis=1) if table is not None and bag is not None else features
            logits.append(inputs @ weight.T + bias)
        head_log_probs = _log_softmax(np.stack(logits))  # (K, B, L)
        mean_log_probs = np.logaddexp.reduce(head_log_probs, axis=0) - np.float32(math.log(len(self.heads)))
        return _log_softmax((mean_log_probs + self.label_bias) / temperature)

    def _total_log_probs(self, padded: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp], table: Array) -> Array:
        """Each name's sum of the character model's log-probabilities of its characters and its end, as
        CharLanguageModel.total_log_probs computes it: one table lookup per symbol."""
        order, base = self.lm_order, self.lm_base
        batch, steps = padded.shape
        context = order - 1
        symbols = np.zeros((batch, context + steps + 1), dtype=np.int64)
        symbols[:, :context] = self.lm_begin
        symbols[:, context : context + steps] = padded
        symbols[np.arange(batch), context + lengths] = self.lm_end
        codes = symbols[:, : steps + 1]  # the earliest context symbol first, the target last
        for j in range(1, order):
            codes = codes * base + symbols[:, j : j + steps + 1]
        counted = np.arange(steps + 1)[np.newaxis, :] <= lengths[:, np.newaxis]  # (B, T + 1)
        totals: Array = np.where(counted, table[codes], np.float32(0)).sum(axis=1, dtype=np.float32)
        return totals

    def _lone_features(self, ids: tuple[int, ...]) -> Array:
        """`_features` for one name: the same steps on vectors, without the batch's set-up."""
        size = self.hidden_size
        layout = self._prepared_gru()
        gates_of_char, candidate_of_char = layout.gates_halved, layout.candidate
        recurrent = layout.recurrent_with_bias_row
        rows = list(ids)
        augmented = np.zeros(size + 1, dtype=np.float32)  # (h, 1)
        augmented[size] = 1
        state = augmented[:size]
        hidden = np.empty(3 * size, dtype=np.float32)  # W_hh h + b_hh, gates halved
        hidden_gates, hidden_candidate = hidden[: 2 * size], hidden[2 * size :]
        gates = np.empty(2 * size, dtype=np.float32)
        reset, update = gates[:size], gates[size:]
        candidate = np.empty(size, dtype=np.float32)
        running_max = np.full(size, -np.inf, dtype=np.float32) if self.with_max else None
        for step_gates, step_candidate in zip(gates_of_char[rows], candidate_of_char[rows], strict=True):
            np.matmul(augmented, recurrent, out=hidden)
            np.add(step_gates, hidden_gates, out=gates)
            np.tanh(gates, out=gates)  # r, z = sigmoid(x) = (tanh(x / 2) + 1) / 2
            gates *= 0.5
            gates += 0.5
            np.multiply(reset, hidden_candidate, out=candidate)
            candidate += step_candidate
            np.tanh(candidate, out=candidate)  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
            state -= candidate
            state *= update
            state += candidate  # h' = (1 - z) * n + z * h
            if running_max is not None:
                np.maximum(running_max, state, out=running_max)
        return state.copy() if running_max is None else np.concatenate((state, running_max))

    def _lone_bucket_arrays(self, ids: tuple[int, ...]) -> list[npt.NDArray[np.int64]]:
        """Each head's bucket of every n-gram of "^name$", as NgramHasher files them (the same int64
        arithmetic: a code is below base ** order, so code * multiplier stays under 2 ** 63)."""
        assert self.ngram is not None
        order, buckets, begin_id, end_id, base = self.ngram
        marked = [begin_id, *ids, end_id]
        codes = list(marked)
        gram = marked
        for n in range(2, min(order, len(marked)) + 1):
            gram = [code * base + symbol for code, symbol in zip(gram, marked[n - 1 :], strict=False)]
            codes.extend(gram)
        code_array = np.array(codes, dtype=np.int64)
        return [
            (((code_array * multiplier) & 0xFFFFFFFF) * buckets) >> 32
            for multiplier in HEAD_HASH_MULTIPLIERS[: len(self.heads)]
        ]

    def _lone_network_log_probs(self, ids: tuple[int, ...], temperature: np.float32) -> Array:
        features = self._lone_features(ids)
        logits = []
        bucket_arrays = self._lone_bucket_arrays(ids) if self.ngram is not None else [None] * len(self.heads)
        for (table, weight, bias), buckets in zip(self.heads, bucket_arrays, strict=True):
            if table is not None and buckets is not None:
                bag = np.add.reduce(table[buckets], axis=0) / np.float32(len(buckets))  # EmbeddingBag's mean
                logits.append(weight @ np.concatenate((features, bag)) + bias)
            else:
                logits.append(weight @ features + bias)
        head_log_probs = _log_softmax(np.stack(logits))  # (K, L)
        mean_log_probs = np.logaddexp.reduce(head_log_probs, axis=0) - np.float32(math.log(len(self.heads)))
        return _log_softmax((mean_log_probs + self.label_bias) / temperature)

    def _lone_total_log_prob(self, ids: tuple[int, ...], table: Array) -> float:
        order, base = self.lm_order, self.lm_base
        span = base**order  # a code of `order` symbols is below it
        code = 0
        for symbol in [self.lm_begin] * (order - 1):
            code = code * base + symbol
        codes = []
        for symbol in [*ids, self.lm_end]:  # each target with the order - 1 symbols before it
            code = (code * base + symbol) % span
            codes.append(code)
        return float(table[codes].sum())


def _log_softmax(values: Array) -> Array:
    """log_softmax over the last axis."""
    shifted = values - values.max(axis=-1, keepdims=True)
    result: Array = shifted - np.log(np.add.reduce(np.exp(shifted), axis=-1, keepdims=True))
    return result
