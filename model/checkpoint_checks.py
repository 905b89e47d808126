"""What a checkpoint's record and tensors must hold before anything is built from them.

The checksum only says the file is as its writer left it, and the digest has no key: a file edited
by hand, or written by other code, passes it. So every field is checked for its type and range, every
size against what the file holds, and every tensor's values, before a network is built or a table
allocated. A file that
fails is refused at load with its problem named (`CheckpointError`), never a crash at the first
request or a model that answers wrongly without a word (a NaN threshold turned the not-a-name check
off; a hidden size of 10^8 asked torch for gigabytes before any shape was compared).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import torch

from model.networks import NetworkConfig
from model.novelty import NoveltyConfig

MAX_NOVELTY_ORDER = 8  # checked first, so that base ** order is never taken of a huge order
MAX_LISTED = 5  # tensors named in one message


class RecordError(ValueError):
    """A field of the metadata record, or a tensor, that a servable checkpoint cannot have."""


def check_field_types(config: object, section: str) -> None:
    """Each field of a config dataclass holds its annotated type: an int that is not a bool, a finite
    number, a string, a bool, a tuple of strings (JSON gives any type for any key)."""
    hints = typing.get_type_hints(type(config))
    for config_field in dataclasses.fields(config):  # type: ignore[arg-type]
        expected, value = hints[config_field.name], getattr(config, config_field.name)
        where = f"{section}.{config_field.name}"
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise RecordError(f"{where} must be an integer, got {value!r}")
        if expected is float and not _finite_number(value):
            raise RecordError(f"{where} must be a finite number, got {value!r}")
        if expected is bool and not isinstance(value, bool):
            raise RecordError(f"{where} must be true or false, got {value!r}")
        if expected is str and not isinstance(value, str):
            raise RecordError(f"{where} must be a string, got {value!r}")
        if expected == tuple[str, ...] and not all(isinstance(item, str) for item in value):
            raise RecordError(f"{where} must be a list of strings, got {value!r}")


def check_string_lists(table: dict[str, Any], where: str) -> None:
    """A {text: [text, ...]} table of the evidence (scripts, letters, words per label)."""
    if not isinstance(table, dict) or not all(
        isinstance(key, str) and isinstance(values, list) and all(isinstance(item, str) for item in values)
        for key, values in table.items()
    ):
        raise RecordError(f"{where} must map strings to lists of strings")


def check_probability_floor(value: object, where: str) -> None:
    """An evidence floor is a probability the log of which is taken: in (0, 1]."""
    if not _finite_number(value) or not 0 < value <= 1:  # type: ignore[operator]
        raise RecordError(f"{where} must be a number in (0, 1], got {value!r}")


def check_labels(labels: object) -> tuple[str, ...]:
    """A list of distinct, non-empty strings (a string is not a list of its letters)."""
    if not isinstance(labels, list) or not all(isinstance(label, str) and label.strip() for label in labels):
        raise RecordError(f"labels must be a list of non-empty strings, got {str(labels)[:200]}")
    if len(set(labels)) != len(labels):
        raise RecordError(f"labels must be distinct, got {labels}")
    return tuple(labels)


def check_label_prior(values: object, num_labels: int) -> tuple[float, ...]:
    if not isinstance(values, list) or len(values) != num_labels or not all(_finite_number(v) for v in values):
        raise RecordError(f"label prior needs one finite number per label ({num_labels}), got {str(values)[:200]}")
    if not all(value > 0 for value in values):
        raise RecordError(f"label prior values must be positive, got {values}")
    return tuple(float(value) for value in values)


def check_info(info: object) -> dict[str, Any]:
    """Provenance is free-form, but what GET /model shows must have the types it shows them as."""
    if not isinstance(info, dict):
        raise RecordError(f"info must be an object, got {type(info).__name__}")
    if not isinstance(info.get("metrics", {}), dict):
        raise RecordError("info.metrics must be an object")
    if not isinstance(info.get("training", {}), dict):
        raise RecordError("info.training must be an object")
    for key in ("metrics_note", "data_fingerprint", "torch_version", "created_at"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise RecordError(f"info.{key} must be a string, got {info[key]!r}")
    return info


def check_network_size(config: NetworkConfig, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse a config whose network needs more numbers than the file holds, before torch allocates
    it: every recurrent layer has a (hidden x hidden) matrix at least, every input one (vocabulary x
    hidden), every head its bag's (buckets x width) table. A real checkpoint always passes; a network
    built from one that passes is at most a few times the size of the file."""
    held = sum(tensor.numel() for tensor in tensors.values())
    hidden = config.hidden_size
    needs = {
        "hidden_size ** 2 x num_layers": hidden * hidden * config.num_layers,
        "vocab_size x hidden_size": config.vocab_size * hidden,
        "num_labels x hidden_size": config.num_labels * hidden,
        "ngram_buckets x ngram_dim x num_heads": (
            config.ngram_buckets * config.ngram_dim * config.num_heads if config.ngram_order else 0
        ),
    }
    for what, count in needs.items():
        if count > held:
            raise RecordError(
                f"weights do not fit the saved architecture: {what} is {count:,} numbers; the file holds {held:,}"
            )


def check_network_values(tensors: dict[str, torch.Tensor]) -> None:
    """Finite floating-point weights (torch would cast integers and booleans in without a word), and one
    positive calibration temperature (a negative one turns every answer around)."""
    not_float = [name for name, tensor in tensors.items() if not tensor.is_floating_point()]
    if not_float:
        raise RecordError(f"weights must be floating-point numbers: {_listed(not_float)}")
    check_finite(tensors, "weights")
    temperature = tensors.get("temperature")
    if temperature is not None and (temperature.shape != () or not float(temperature) > 0):
        raise RecordError(f"the calibration temperature must be one positive number, got {temperature.tolist()}")


def check_novelty_tables(config: NoveltyConfig, tables: dict[str, torch.Tensor]) -> None:
    """The not-a-name model's tables: an order it can serve, codes that are sorted integers of its
    order's range (they are binary-searched and used as indices), one value per code, all finite."""
    if not 1 <= config.order <= MAX_NOVELTY_ORDER or config.vocab_size < 1:
        raise RecordError(
            f"novelty.order must be 1..{MAX_NOVELTY_ORDER} and novelty.vocab_size positive, "
            f"got {config.order} and {config.vocab_size}"
        )
    for k in range(2, config.order + 1):
        for codes_name, values_name, length in (
            (f"gram_codes_{k}", f"gram_log_probs_{k}", k),
            (f"context_codes_{k}", f"context_backoffs_{k}", k - 1),
        ):
            codes, values = tables.get(codes_name), tables.get(values_name)
            if codes is None or values is None:
                continue  # the model's own check names a missing table
            if codes.dtype != torch.int64 or codes.dim() != 1 or values.shape != codes.shape:
                raise RecordError(f"novelty table {codes_name} must be 1-D int64 codes, one per {values_name} value")
            if codes.numel() and (
                int(codes.min()) < 0 or int(codes.max()) >= config.base**length or bool((codes[1:] <= codes[:-1]).any())
            ):
                raise RecordError(
                    f"novelty table {codes_name} must hold increasing codes below {config.base}**{length}"
                )
    not_float = [name for name, table in tables.items() if "codes" not in name and not table.is_floating_point()]
    if not_float:
        raise RecordError(f"novelty log-probabilities must be floating-point numbers: {_listed(not_float)}")
    check_finite(tables, "novelty tables")


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """No NaN or infinity anywhere: a float64 sum is finite exactly when every value is (finite float32
    or float16 values cannot add up to an overflow there), and costs a tenth of isfinite on float16."""
    bad = [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not math.isfinite(tensor.sum(dtype=torch.float64).item())
    ]
    if bad:
        raise RecordError(f"{what} hold NaN or infinite values: {_listed(bad)}")


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED]) or "none"
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")
