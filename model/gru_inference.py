"""The hand-written CPU inference GRU, and the batch size from which it replaces nn.GRU.

A one-layer, one-way nn.GRU's equations, written out over a packed batch for inference on the CPU.
It pays off only on large batches (it skips the one-hot matmul and finished names, but runs more
small ops per step than nn.GRU's fused kernel), so it is taken from FAST_GRU_MIN_BATCH names up,
a gate set by the bench's "GRU gate" measurement (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

FAST_GRU_MIN_BATCH = 128  # names per call; below it nn.GRU is at least as fast (bench: "GRU gate")


def fast_gru_applies(gru: nn.Module, batch_size: int, device: torch.device) -> bool:
    """Whether the hand-written GRU would be taken: a plain one-layer, one-way nn.GRU, on the CPU,
    outside autograd (it has no backward), for a batch of at least FAST_GRU_MIN_BATCH names."""
    return (
        is_plain_gru(gru) and device.type == "cpu" and not torch.is_grad_enabled() and batch_size >= FAST_GRU_MIN_BATCH
    )


def is_plain_gru(gru: nn.Module) -> bool:
    """One layer, one direction: the only nn.GRU the hand-written equations cover."""
    return isinstance(gru, nn.GRU) and gru.num_layers == 1 and not gru.bidirectional


def gru_inference_features(gru: nn.GRU, packed_ids: PackedSequence, with_max: bool) -> torch.Tensor:
    """What `sequence_features` computes for a one-layer, one-way nn.GRU, for inference on the CPU.

    nn.GRU's own equations, written out over the packed batch, with four shortcuts:
    - the input side of a one-hot character is one row of a (V, 3H) table (W_ih's column plus b_ih),
      gathered per step, where it is still in cache, straight into the buffer that the step's matmul
      then adds W_hh h + b_hh to (one pass where a whole-batch gather, a slice and an add took three);
    - b_hh rides in that matmul on a constant 1 after the state, so the sums are nn.GRU's own,
      b_ih + (W_hh h + b_hh), and the state is updated in place in that buffer;
    - each step runs on the names still going (rows are sorted longest first, so they are a prefix);
    - tanh(a) is taken as 2 * sigmoid(2a) - 1, the 2 folded into the weights, because torch's CPU
      tanh costs six sigmoids.
    Tests hold it to nn.GRU's features within 1e-6, on the shipped weights too.
    """
    hidden_size = gru.hidden_size
    reset_update_of_char, candidate_of_char, weight_reset_update, weight_candidate = _step_weights(gru)
    char_ids = packed_ids.data  # (N,), time-major
    batch_sizes = [*packed_ids.batch_sizes.tolist(), 0]
    state_and_one = reset_update_of_char.new_zeros(batch_sizes[0], hidden_size + 1)  # (B, H + 1), longest first
    state_and_one[:, hidden_size] = 1.0
    final_state = reset_update_of_char.new_empty(batch_sizes[0], hidden_size)
    running_max = torch.full_like(final_state, float("-inf")) if with_max else None
    row = 0
    for step, active in enumerate(batch_sizes[:-1]):
        step_ids = char_ids[row : row + active]  # (b,)
        row += active
        going = state_and_one[:active]  # (b, H + 1): the names still going, with their constant 1
        # (b, 2H): the reset and update gates, sigmoid(W_i x + b_i + (W_h h + b_h)), summed in place
        reset_update = reset_update_of_char.index_select(0, step_ids).addmm_(going, weight_reset_update).sigmoid_()
        hidden_candidate = torch.mm(going, weight_candidate)  # (b, H): W_hn h + b_hn
        twice_new = candidate_of_char.index_select(0, step_ids).addcmul_(
            reset_update[:, :hidden_size], hidden_candidate
        )
        candidate = twice_new.sigmoid_().mul_(2).sub_(1)  # tanh of the candidate's pre-activation
        state = going[:, :hidden_size]
        torch.lerp(candidate, state, reset_update[:, hidden_size:], out=state)  # (1 - z) * n + z * h, in place
        if running_max is not None:
            torch.maximum(running_max[:active], state, out=running_max[:active])
        still_going = batch_sizes[step + 1]
        final_state[still_going:active] = state[still_going:]  # names that end at this step
    features = final_state if running_max is None else torch.cat((final_state, running_max), dim=1)
    return features[packed_ids.unsorted_indices]


def _step_weights(gru: nn.GRU) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The GRU's weights laid out for `gru_inference_features`, the candidate gate's doubled: per
    character, the input side of the reset/update gates (V, 2H) and of the candidate (V, H), each
    with b_ih; W_hh with b_hh as its last row, for the reset/update gates (H + 1, 2H) and the
    candidate (H + 1, H), kept apart because the reset gate scales the candidate's. About 0.1 ms:
    small beside a batch of FAST_GRU_MIN_BATCH names or more, so it is not cached."""
    hidden_size = gru.hidden_size
    # nn.GRU sets its layer-0 weights by name, so the stubs type them as Tensor | Module
    weight_ih, bias_ih = cast(torch.Tensor, gru.weight_ih_l0), cast(torch.Tensor, gru.bias_ih_l0)
    weight_hh, bias_hh = cast(torch.Tensor, gru.weight_hh_l0), cast(torch.Tensor, gru.bias_hh_l0)
    doubled = torch.ones(3 * hidden_size, device=weight_ih.device)
    doubled[2 * hidden_size :] = 2.0  # the candidate gate's pre-activation, doubled for the sigmoid form of tanh
    gates_of_char = (weight_ih.t() + bias_ih) * doubled  # (V, 3H): W_ih one_hot(c) + b_ih
    hidden_weights = torch.cat((weight_hh.t(), bias_hh.unsqueeze(0))) * doubled  # (H + 1, 3H)
    return (
        gates_of_char[:, : 2 * hidden_size].contiguous(),
        gates_of_char[:, 2 * hidden_size :].contiguous(),
        hidden_weights[:, : 2 * hidden_size].contiguous(),
        hidden_weights[:, 2 * hidden_size :].contiguous(),
    )
