"""The hand-written CPU inference GRU, and the batch size from which it replaces nn.GRU.

A one-layer, one-way nn.GRU's equations, written out over a packed batch for inference on the CPU.
It pays off only on large batches (it skips the one-hot matmul and finished names, but runs more
small ops per step than nn.GRU's fused kernel), so it is taken from FAST_GRU_MIN_BATCH names up,
a gate set by the bench's "GRU gate" measurement (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
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

    nn.GRU's own equations, written out over the packed batch, with three shortcuts: the input side of
    a one-hot character is one column of W_ih, so it is looked up instead of multiplied; each step
    runs on the names still going (rows are sorted longest first, so they are a prefix); and
    tanh(a) is taken as 2 * sigmoid(2a) - 1, the 2 folded into the weights, because torch's CPU
    tanh costs six sigmoids. Tests hold it to nn.GRU's features within 1e-6.
    """
    hidden_size = gru.hidden_size
    # nn.GRU sets its layer-0 weights by name, so the stubs type them as Tensor | Module
    weight_ih, bias_ih = cast(torch.Tensor, gru.weight_ih_l0), cast(torch.Tensor, gru.bias_ih_l0)
    weight_hh_l0, bias_hh_l0 = cast(torch.Tensor, gru.weight_hh_l0), cast(torch.Tensor, gru.bias_hh_l0)
    doubled = torch.ones(3 * hidden_size, device=weight_ih.device)
    doubled[2 * hidden_size :] = 2.0  # the candidate gate's pre-activation, doubled for the sigmoid form of tanh
    gates_of_char = ((weight_ih.t() + bias_ih) * doubled).contiguous()  # (V, 3H): W_ih one_hot(c) + b_ih
    weight_hh, bias_hh = (weight_hh_l0.t() * doubled).contiguous(), bias_hh_l0 * doubled  # (H, 3H), (3H,)
    input_gates = F.embedding(packed_ids.data, gates_of_char)  # (N, 3H), time-major
    batch_sizes = [*packed_ids.batch_sizes.tolist(), 0]
    state = input_gates.new_zeros(batch_sizes[0], hidden_size)  # (B, H), longest name first
    final_state = torch.empty_like(state)
    running_max = torch.full_like(state, float("-inf")) if with_max else None
    row = 0
    for step, active in enumerate(batch_sizes[:-1]):
        step_gates = input_gates[row : row + active]  # (b, 3H)
        row += active
        hidden_gates = torch.addmm(bias_hh, state, weight_hh)  # (b, 3H): W_hh h + b_hh
        reset_update = torch.sigmoid(step_gates[:, : 2 * hidden_size] + hidden_gates[:, : 2 * hidden_size])
        twice_new = torch.addcmul(
            step_gates[:, 2 * hidden_size :], reset_update[:, :hidden_size], hidden_gates[:, 2 * hidden_size :]
        )
        candidate = torch.sigmoid(twice_new).mul_(2).sub_(1)  # tanh of the candidate's pre-activation
        state = torch.lerp(candidate, state, reset_update[:, hidden_size:])  # (1 - z) * n + z * h
        if running_max is not None:
            torch.maximum(running_max[:active], state, out=running_max[:active])
        still_going = batch_sizes[step + 1]
        final_state[still_going:active] = state[still_going:]  # names that end at this step
        state = state[:still_going]
    features = final_state if running_max is None else torch.cat((final_state, running_max), dim=1)
    return features[packed_ids.unsorted_indices]
