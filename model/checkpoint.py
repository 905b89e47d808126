"""The checkpoint format: the only code that reads or writes weights.

One safetensors file: the network's tensors and the not-a-name language model's (`novelty.*`), plus
a JSON record under the header key `nameorigin` holding the format version, architecture, encoder,
labels, the label prior, the evidence table, the not-a-name threshold, data fingerprint, metrics
and provenance. A sha256
over the record and every tensor is stored beside them, so an edited or truncated file is refused.
Writes go to a temp file that replaces the target atomically; loads never unpickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from model import checkpoint_checks as checks
from model.encoder import EncoderConfig
from model.evidence import EvidenceTable
from model.networks import NameClassifier, NetworkConfig, build_network
from model.novelty import CharLanguageModel, NoveltyConfig

logger = logging.getLogger(__name__)

# 2: one recurrent stack shared by classifier heads (`heads.K.*`), each hashing n-grams its own way.
# 3: lower-case alphabet; the not-a-name language model (`novelty.*` tensors, `novelty` record),
#    the evidence table and the label prior. Older files read names differently: refused.
FORMAT_VERSION = 3
TEMP_SUFFIX = ".tmp"  # `.<target name>.<random><TEMP_SUFFIX>` beside the target while it is written
MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024  # the shipped file is 3.7 MB; anything this big is not ours
NOVELTY_PREFIX = "novelty."
METADATA_KEY = "nameorigin"
DIGEST_KEY = "nameorigin_sha256"


HALF_PRECISION_SUFFIX = "ngram_table.weight"  # n-gram tables: most of a file's bytes, stored as float16


def storage_tensors(network: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors as the file stores them: n-gram tables in float16 (half the bytes; they are
    averaged lookups, so rounding moves a probability by about 1e-4), everything else as is."""
    return {
        name: (value.half() if name.endswith(HALF_PRECISION_SUFFIX) else value).detach().cpu().contiguous()
        for name, value in network.state_dict().items()
    }


def round_to_storage_precision(network: nn.Module) -> None:
    """Round the weights in place to what the file will hold, so that the metrics a trainer
    measures before saving are the metrics of the checkpoint it writes."""
    network.load_state_dict(storage_tensors(network))  # loading casts the float16 tables back


class CheckpointError(ValueError):
    """A checkpoint that cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class Checkpoint:
    """Everything needed to serve a model: weights, architecture, encoder, label order, provenance."""

    network_config: NetworkConfig
    encoder_config: EncoderConfig
    labels: tuple[str, ...]
    state_dict: dict[str, torch.Tensor]
    novelty_config: NoveltyConfig
    novelty_tables: dict[str, torch.Tensor]
    evidence_table: EvidenceTable
    label_prior: tuple[float, ...]  # P(label) the calibrated network answers under (see training.train)
    info: dict[str, Any] = field(default_factory=dict)  # data fingerprint, metrics, training, versions
    digest: str = ""  # sha256 of the whole file's record and tensors: the integrity check
    answer_digest: str = ""  # sha256 of the tensors and the record without `info`: what shapes the answers
    # The file's bytes as read and verified, so that a server can keep a copy of exactly the model it
    # accepted (app.accepted); empty for a checkpoint built in memory.
    file_bytes: bytes = field(default=b"", repr=False, compare=False)

    @property
    def model_id(self) -> str:
        """Names what answers: two checkpoints with the same weights, reader, labels, prior, not-a-name
        model and evidence have the same id, whenever and wherever they were trained (`info`, which
        holds timestamps, timings and metrics, is left out)."""
        return f"nameorigin-{self.network_config.architecture}-{self.answer_digest[:12]}"

    def build_network(self) -> NameClassifier:
        """A network in eval mode with these weights; shape mismatches raise CheckpointError."""
        network = build_network(self.network_config)
        try:
            network.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"weights do not fit the saved architecture: {error}") from error
        return network.eval()

    def build_language_model(self) -> CharLanguageModel:
        try:
            return CharLanguageModel(self.novelty_config, self.novelty_tables)
        except ValueError as error:
            raise CheckpointError(f"not-a-name model does not fit its config: {error}") from error


def _answer_digest(record: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str:
    """The digest of everything but `info`: the model's identity (Checkpoint.model_id)."""
    return _digest(json.dumps({key: value for key, value in record.items() if key != "info"}, sort_keys=True), tensors)


def _digest(record_json: str, tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256(record_json.encode("utf-8"))
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _Serialized(NamedTuple):
    """A checkpoint as the file holds it: the record, its JSON, the tensors and their digest."""

    record: dict[str, Any]
    record_json: str
    tensors: dict[str, torch.Tensor]
    digest: str


def _serialize(
    network: NameClassifier,
    encoder_config: EncoderConfig,
    labels: list[str] | tuple[str, ...],
    language_model: CharLanguageModel,
    label_prior: list[float] | tuple[float, ...],
    evidence_table: EvidenceTable | None,
    info: dict[str, Any] | None,
) -> _Serialized:
    network_config = network.config
    if network_config.num_labels != len(labels):
        raise CheckpointError(f"network has {network_config.num_labels} outputs but {len(labels)} labels")
    tensors = storage_tensors(network)
    tensors.update(
        {NOVELTY_PREFIX + name: value.detach().cpu().contiguous() for name, value in language_model.tables().items()}
    )
    record = {
        "format_version": FORMAT_VERSION,
        "network": network_config.to_dict(),
        "encoder": encoder_config.to_dict(),
        "labels": list(labels),
        "label_prior": [float(value) for value in label_prior],
        "novelty": language_model.config.to_dict(),
        "evidence": (evidence_table or EvidenceTable()).to_dict(),
        "info": {
            "torch_version": torch.__version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **(info or {}),
        },
    }
    record_json = json.dumps(record, sort_keys=True)
    return _Serialized(record, record_json, tensors, _digest(record_json, tensors))


def make_checkpoint(
    network: NameClassifier,
    encoder_config: EncoderConfig,
    labels: list[str] | tuple[str, ...],
    language_model: CharLanguageModel,
    label_prior: list[float] | tuple[float, ...],
    evidence_table: EvidenceTable | None = None,
    info: dict[str, Any] | None = None,
) -> Checkpoint:
    """The checkpoint as it would be written, in memory (weights at storage precision): what a
    trainer measures before it writes."""
    made = _serialize(network, encoder_config, labels, language_model, label_prior, evidence_table, info)
    return _checkpoint_from_record(made.record, made.tensors, made.digest, Path("<memory>"))


def checkpoint_payload(
    network: NameClassifier,
    encoder_config: EncoderConfig,
    labels: list[str] | tuple[str, ...],
    language_model: CharLanguageModel,
    label_prior: list[float] | tuple[float, ...],
    evidence_table: EvidenceTable | None = None,
    info: dict[str, Any] | None = None,
) -> tuple[bytes, Checkpoint]:
    """The file's bytes and the checkpoint they hold, for a caller that writes it together with other
    files (`write_together`)."""
    made = _serialize(network, encoder_config, labels, language_model, label_prior, evidence_table, info)
    payload = save_safetensors(made.tensors, metadata={METADATA_KEY: made.record_json, DIGEST_KEY: made.digest})
    return payload, _checkpoint_from_record(made.record, made.tensors, made.digest, Path("<memory>"), payload)


def save_checkpoint(
    path: str | Path,
    network: NameClassifier,
    encoder_config: EncoderConfig,
    labels: list[str] | tuple[str, ...],
    language_model: CharLanguageModel,
    label_prior: list[float] | tuple[float, ...],
    evidence_table: EvidenceTable | None = None,
    info: dict[str, Any] | None = None,
) -> Checkpoint:
    """Write a checkpoint atomically: a crash mid-write leaves any earlier file at `path` intact."""
    target = Path(path)
    made = _serialize(network, encoder_config, labels, language_model, label_prior, evidence_table, info)
    payload = save_safetensors(made.tensors, metadata={METADATA_KEY: made.record_json, DIGEST_KEY: made.digest})
    write_atomically(target, payload)
    logger.info("wrote checkpoint %s (%d bytes)", target, len(payload))
    return _checkpoint_from_record(made.record, made.tensors, made.digest, target, payload)


FileIdentity = tuple[int, int, int, int] | None  # (device, inode, size, mtime in ns); None: no file


def file_identity(path: Path) -> FileIdentity:
    """What changes when the file is replaced or rewritten (os.replace gives a new inode)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def write_atomically(target: Path, payload: bytes) -> None:
    """Write `payload` to a temp file beside `target`, fsync it and rename it over `target`: a reader
    sees the old file or the new one, never part of one; on any failure the temp file is removed."""
    write_together({target: payload})


def write_together(files: dict[Path, bytes], also_remove: tuple[Path, ...] = ()) -> None:
    """Write several files as one unit: every payload goes to its temp file (fsynced) first, then the
    old copies of all but the first file (and `also_remove`: an old run's file this run has no new copy
    of) are removed and the new ones renamed in, in order. A failure while staging leaves the old files
    and no temp file; a kill during the renames leaves the files renamed so far and none of the old ones
    after them, so a later file never describes another first file (the trainer's metrics.json beside
    weights it does not name)."""
    for target in files:  # before anything changes: os.replace onto a folder fails after the old files went
        if target.exists() and not target.is_file():
            raise IsADirectoryError(f"{target} exists and is not a regular file; nothing was written")
    staged: dict[Path, Path] = {}
    try:
        for target, payload in files.items():
            staged[target] = _staged(target, payload)
        for target in [*list(files)[1:], *also_remove]:  # what describes the first file goes before it is replaced
            target.unlink(missing_ok=True)
        for target, temp_path in staged.items():
            os.replace(temp_path, target)
    except BaseException:
        for temp_path in staged.values():
            temp_path.unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: Path, targets: tuple[str, ...]) -> list[Path]:
    """Temp files this module left for `targets` in `folder` when a process was killed mid-write."""
    stale = [path for name in targets for path in folder.glob(f".{name}.*{TEMP_SUFFIX}") if path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _staged(target: Path, payload: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(payload)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp makes it owner-only; servers often run as another user
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return Path(temp_name)


def read_checkpoint_bytes(path: str | Path) -> bytes:
    """A checkpoint file's bytes, unchecked; CheckpointError when it cannot be read or is no regular file."""
    source = Path(path)
    try:
        return _read_regular_file(source)
    except OSError as error:
        raise CheckpointError(f"{source}: cannot read checkpoint ({error.strerror})") from error


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint; any missing, truncated, edited or mismatched file raises CheckpointError."""
    source = Path(path)
    payload = read_checkpoint_bytes(source)
    try:
        tensors = load_safetensors(payload)
        metadata = _read_header_metadata(payload)
    except (SafetensorError, ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{source}: not a readable safetensors checkpoint ({error})") from error
    if METADATA_KEY not in metadata or DIGEST_KEY not in metadata:
        raise CheckpointError(f"{source}: safetensors file has no nameorigin metadata record")
    record_json = metadata[METADATA_KEY]
    if _digest(record_json, tensors) != metadata[DIGEST_KEY]:
        raise CheckpointError(f"{source}: checksum mismatch: the file was edited or corrupted")
    try:
        record = json.loads(record_json)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, an integer of 4,300 digits, deep nesting
        raise CheckpointError(f"{source}: metadata record is not valid JSON ({type(error).__name__})") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{source}: metadata record is not a JSON object")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: checkpoint format version {version!r}; this code reads version {FORMAT_VERSION} "
            "(retrain with `python -m training.train` to get a current checkpoint)"
        )
    return _checkpoint_from_record(record, tensors, metadata[DIGEST_KEY], source, payload)


def _read_header_metadata(payload: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors header (its first 8 bytes give the header length)."""
    header_length = int.from_bytes(payload[:8], "little")
    if len(payload) < 8 or header_length > len(payload) - 8:
        raise ValueError("header length runs past the end of the file")
    header = json.loads(payload[8 : 8 + header_length].decode("utf-8"))
    return header.get("__metadata__") or {}


def _read_regular_file(source: Path) -> bytes:
    """The file's bytes, refused before reading when it is not a regular file (a FIFO would block
    start-up forever, /dev/zero would fill memory) or is larger than MAX_CHECKPOINT_BYTES."""
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
    descriptor = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise CheckpointError(f"{source}: not a regular file; a checkpoint is a .safetensors file")
        if status.st_size > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(
                f"{source}: {status.st_size} bytes, over the {MAX_CHECKPOINT_BYTES}-byte limit for a checkpoint"
            )
        return handle.read(MAX_CHECKPOINT_BYTES + 1)


def _checkpoint_from_record(
    record: dict[str, Any], tensors: dict[str, torch.Tensor], digest: str, source: Path, file_bytes: bytes = b""
) -> Checkpoint:
    try:
        network_config = NetworkConfig.from_dict(record["network"])
        encoder_config = EncoderConfig(**record["encoder"])
        novelty_config = NoveltyConfig.from_dict(record["novelty"])
        evidence_table = EvidenceTable.from_dict(record["evidence"])
        labels = checks.check_labels(record["labels"])
        label_prior = checks.check_label_prior(record["label_prior"], len(labels))
        info = checks.check_info(record.get("info", {}))
        _check_record_fields(network_config, encoder_config, novelty_config, evidence_table)
    except (KeyError, TypeError, ValueError) as error:  # checks.RecordError is a ValueError
        raise CheckpointError(f"{source}: metadata record is incomplete or invalid ({error})") from error
    if len(labels) != network_config.num_labels:
        raise CheckpointError(f"{source}: {len(labels)} labels but the network has {network_config.num_labels} outputs")
    encoder_vocab_size = len(encoder_config.alphabet) + 2
    if encoder_vocab_size != network_config.vocab_size:
        raise CheckpointError(
            f"{source}: encoder alphabet gives {encoder_vocab_size} symbols but the network reads "
            f"{network_config.vocab_size}"
        )
    if novelty_config.vocab_size != encoder_vocab_size:
        raise CheckpointError(
            f"{source}: not-a-name model reads {novelty_config.vocab_size} symbols, the encoder {encoder_vocab_size}"
        )
    network_tensors = {name: value for name, value in tensors.items() if not name.startswith(NOVELTY_PREFIX)}
    novelty_tables = {
        name[len(NOVELTY_PREFIX) :]: value for name, value in tensors.items() if name.startswith(NOVELTY_PREFIX)
    }
    try:
        checks.check_network_size(network_config, network_tensors)
        checks.check_network_values(network_tensors)
        checks.check_novelty_tables(novelty_config, novelty_tables)
    except checks.RecordError as error:
        raise CheckpointError(f"{source}: {error}") from None
    checkpoint = Checkpoint(
        network_config,
        encoder_config,
        labels,
        network_tensors,
        novelty_config,
        novelty_tables,
        evidence_table,
        label_prior,
        info,
        digest,
        _answer_digest(record, tensors),
        file_bytes,
    )
    try:
        checkpoint.build_network()  # fail now, not at the first request, if the weights do not fit
        checkpoint.build_language_model()
    except CheckpointError as error:
        raise CheckpointError(f"{source}: {error}") from None
    return checkpoint


def _check_record_fields(
    network_config: NetworkConfig,
    encoder_config: EncoderConfig,
    novelty_config: NoveltyConfig,
    evidence_table: EvidenceTable,
) -> None:
    """Types and ranges of the record's fields (model.checkpoint_checks)."""
    checks.check_field_types(network_config, "network")
    checks.check_field_types(encoder_config, "encoder")
    checks.check_field_types(novelty_config, "novelty")
    for name in ("scripts", "letters", "han_countries", "words", "syllables"):
        checks.check_string_lists(getattr(evidence_table, name), f"evidence.{name}")
    for name in ("script_floor", "letter_floor", "word_floor", "syllable_floor"):
        checks.check_probability_floor(getattr(evidence_table, name), f"evidence.{name}")
