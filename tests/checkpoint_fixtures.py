"""Checkpoints that pass every check at load but are not sound models, for the canary's tests."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from model.assets import DEFAULT_CHECKPOINT_PATH
from model.checkpoint import DIGEST_KEY, METADATA_KEY, _digest, _read_header_metadata


def rewritten(target: Path, change) -> Path:
    """The shipped checkpoint with its record changed by `change` and its checksum made again, as anyone
    who can write the file can do (the digest has no key): it passes every check at load."""
    payload = DEFAULT_CHECKPOINT_PATH.read_bytes()
    tensors = load_safetensors(payload)
    record = json.loads(_read_header_metadata(payload)[METADATA_KEY])
    change(record)
    record_json = json.dumps(record, sort_keys=True)
    metadata = {METADATA_KEY: record_json, DIGEST_KEY: _digest(record_json, tensors)}
    target.write_bytes(save_safetensors(tensors, metadata=metadata))
    return target


def with_shuffled_alphabet(record: dict) -> None:
    record["encoder"]["alphabet"] = record["encoder"]["alphabet"][::-1]
