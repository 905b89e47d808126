import json
import os

import pytest
import torch
from safetensors.torch import save as save_safetensors

import model.checkpoint as checkpoint_module
from model.assets import DEFAULT_CHECKPOINT_PATH
from model.checkpoint import DIGEST_KEY, METADATA_KEY, NOVELTY_PREFIX, CheckpointError, load_checkpoint, save_checkpoint
from model.encoder import EncoderConfig, NameEncoder
from model.evidence import EvidenceTable
from model.networks import build_network
from tests.conftest import tiny_language_model
from tests.network_fixtures import network_config

LABELS = ("Alpha", "Beta", "Gamma")
PRIOR = (0.5, 0.3, 0.2)
LANGUAGE_MODEL = tiny_language_model(EncoderConfig())


def save(path, network, labels=LABELS, info=None, prior=PRIOR):
    return save_checkpoint(path, network, EncoderConfig(), labels, LANGUAGE_MODEL, prior, info=info)


def full_record(tiny, **overrides):
    """A complete current record, with some fields replaced."""
    record = {
        "format_version": checkpoint_module.FORMAT_VERSION,
        "network": tiny.config.to_dict(),
        "encoder": EncoderConfig().to_dict(),
        "labels": list(LABELS),
        "label_prior": list(PRIOR),
        "novelty": LANGUAGE_MODEL.config.to_dict(),
        "evidence": EvidenceTable().to_dict(),
        "info": {},
    }
    return {**record, **overrides}


def all_tensors(network):
    return {**network.state_dict(), **{NOVELTY_PREFIX + k: v for k, v in LANGUAGE_MODEL.tables().items()}}


@pytest.fixture
def tiny_network():
    torch.manual_seed(0)
    return build_network(
        network_config("gru", NameEncoder().vocab_size, len(LABELS), hidden_size=8, bidirectional=True)
    )


@pytest.fixture
def saved_path(tmp_path, tiny_network):
    path = tmp_path / "model.safetensors"
    save(path, tiny_network, info={"data_fingerprint": "sha256:abc", "metrics": {"top1": 0.5}})
    return path


def write_raw(path, tensors, record):
    """A checkpoint with a valid digest around any record: reaches the checks behind the checksum."""
    record_json = json.dumps(record, sort_keys=True)
    digest = checkpoint_module._digest(record_json, tensors)
    path.write_bytes(save_safetensors(tensors, metadata={METADATA_KEY: record_json, DIGEST_KEY: digest}))


def test_checkpoint_round_trip_restores_everything(saved_path, tiny_network):
    loaded = load_checkpoint(saved_path)
    assert loaded.labels == LABELS
    assert loaded.network_config == tiny_network.config
    assert loaded.encoder_config == EncoderConfig()
    assert loaded.info["data_fingerprint"] == "sha256:abc"
    assert loaded.info["metrics"] == {"top1": 0.5}
    assert loaded.info["torch_version"] == torch.__version__
    assert loaded.model_id.startswith("nameorigin-gru-")
    batch = NameEncoder().encode_batch(["Hinton", "Li"])
    torch.testing.assert_close(loaded.build_network()(*batch), tiny_network.eval()(*batch))


def test_checkpoint_is_safetensors_not_pickle(saved_path):
    header_length = int.from_bytes(saved_path.read_bytes()[:8], "little")
    header = json.loads(saved_path.read_bytes()[8 : 8 + header_length])
    assert METADATA_KEY in header["__metadata__"]
    assert not saved_path.read_bytes().startswith(b"\x80")  # no pickle protocol marker


def test_checkpoint_load_rejects_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("keep_fraction", [0.0, 0.001, 0.5, 0.99])
def test_checkpoint_load_rejects_truncated_file(saved_path, keep_fraction):
    data = saved_path.read_bytes()
    saved_path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(CheckpointError):
        load_checkpoint(saved_path)


def test_checkpoint_load_rejects_edited_weights(saved_path):
    data = bytearray(saved_path.read_bytes())
    data[-3] ^= 0xFF
    saved_path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(saved_path)


def test_checkpoint_load_rejects_edited_metadata(saved_path):
    data = saved_path.read_bytes()
    edited = data.replace(b"Gamma", b"Delta")
    assert edited != data
    saved_path.write_bytes(edited)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(saved_path)


def test_checkpoint_load_rejects_plain_safetensors_without_record(tmp_path):
    path = tmp_path / "plain.safetensors"
    path.write_bytes(save_safetensors({"w": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="no nameorigin metadata"):
        load_checkpoint(path)


def test_checkpoint_load_rejects_other_format_version(saved_path, monkeypatch, tiny_network):
    current = checkpoint_module.FORMAT_VERSION
    monkeypatch.setattr(checkpoint_module, "FORMAT_VERSION", current + 1)
    save(saved_path, tiny_network)
    monkeypatch.setattr(checkpoint_module, "FORMAT_VERSION", current)
    with pytest.raises(CheckpointError, match=f"format version {current + 1}; this code reads version {current}"):
        load_checkpoint(saved_path)


def test_checkpoint_load_refuses_version_1_files_of_per_member_networks(tmp_path, tiny_network):
    """Version 1 kept whole networks as `members.K.*` with one shared n-gram hash; its weights must
    never be read into today's heads, whose bags hash differently."""
    path = tmp_path / "v1.safetensors"
    renames = {"rnn.": "members.0.rnn.", "heads.0.linear.": "members.0.head."}  # version 1's layout
    tensors = {}
    for key, value in tiny_network.state_dict().items():
        old_key = next((key.replace(new, old, 1) for new, old in renames.items() if key.startswith(new)), key)
        tensors[old_key] = value
    assert "members.0.rnn.weight_hh_l0" in tensors and "members.0.head.weight" in tensors
    config = {key: value for key, value in tiny_network.config.to_dict().items() if key != "num_heads"}
    record = {
        "format_version": 1,
        "network": {**config, "num_members": 1},
        "encoder": EncoderConfig().to_dict(),
        "labels": list(LABELS),
        "info": {},
    }
    write_raw(path, tensors, record)
    with pytest.raises(CheckpointError, match=r"format version 1; this code reads version 3 .*retrain"):
        load_checkpoint(path)


def test_checkpoint_load_refuses_version_2_files_that_read_names_in_mixed_case(tmp_path, tiny_network):
    """Version 2 networks read a mixed-case alphabet and carry no not-a-name model: refused, not misread."""
    path = tmp_path / "v2.safetensors"
    record = {
        "format_version": 2,
        "network": tiny_network.config.to_dict(),
        "encoder": {"alphabet": "aAbB", "max_length": 64, "lowercase": False},
        "labels": list(LABELS),
        "info": {},
    }
    write_raw(path, dict(tiny_network.state_dict()), record)
    with pytest.raises(CheckpointError, match="format version 2; this code reads version 3"):
        load_checkpoint(path)


def test_checkpoint_round_trip_restores_reading_evidence_and_prior(saved_path):
    loaded = load_checkpoint(saved_path)
    assert loaded.label_prior == PRIOR
    assert loaded.novelty_config == LANGUAGE_MODEL.config
    assert loaded.evidence_table == EvidenceTable()
    rebuilt = loaded.build_language_model()
    ids, lengths = NameEncoder().encode_batch(["Kovski", "xq"])
    torch.testing.assert_close(
        rebuilt.total_log_probs(ids, lengths), LANGUAGE_MODEL.total_log_probs(ids, lengths), atol=0, rtol=0
    )


@pytest.mark.parametrize("prior", [[0.5, 0.5], [0.5, 0.5, 0.0], [0.5, 0.5, -1.0]])
def test_checkpoint_load_rejects_a_label_prior_that_does_not_fit(tmp_path, tiny_network, prior):
    path = tmp_path / "bad.safetensors"
    write_raw(path, all_tensors(tiny_network), full_record(tiny_network, label_prior=prior))
    with pytest.raises(CheckpointError, match="label prior"):
        load_checkpoint(path)


def test_checkpoint_load_rejects_a_not_a_name_model_of_another_alphabet(tmp_path, tiny_network):
    path = tmp_path / "bad.safetensors"
    novelty = {**LANGUAGE_MODEL.config.to_dict(), "vocab_size": LANGUAGE_MODEL.config.vocab_size + 1}
    write_raw(path, all_tensors(tiny_network), full_record(tiny_network, novelty=novelty))
    with pytest.raises(CheckpointError, match="not-a-name model reads"):
        load_checkpoint(path)


def test_checkpoint_load_rejects_missing_not_a_name_tables(tmp_path, tiny_network):
    path = tmp_path / "bad.safetensors"
    write_raw(path, dict(tiny_network.state_dict()), full_record(tiny_network))
    with pytest.raises(CheckpointError, match="not-a-name model does not fit"):
        load_checkpoint(path)


def test_checkpoint_load_rejects_label_count_mismatch(tmp_path, tiny_network):
    path = tmp_path / "bad.safetensors"
    record = full_record(tiny_network, labels=["Alpha", "Beta"], label_prior=[0.5, 0.5])
    write_raw(path, all_tensors(tiny_network), record)
    with pytest.raises(CheckpointError, match="2 labels"):
        load_checkpoint(path)


def test_checkpoint_load_rejects_weight_shape_mismatch(tmp_path, tiny_network):
    path = tmp_path / "bad.safetensors"
    config = {**tiny_network.config.to_dict(), "hidden_size": 16}
    write_raw(path, all_tensors(tiny_network), full_record(tiny_network, network=config))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


def test_checkpoint_load_rejects_alphabet_vocab_mismatch(tmp_path, tiny_network):
    path = tmp_path / "bad.safetensors"
    record = full_record(tiny_network, encoder={**EncoderConfig().to_dict(), "alphabet": "abc"})
    write_raw(path, all_tensors(tiny_network), record)
    with pytest.raises(CheckpointError, match="alphabet"):
        load_checkpoint(path)


def test_checkpoint_save_is_atomic_when_write_fails(saved_path, tiny_network, monkeypatch):
    before = saved_path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save(saved_path, tiny_network, labels=("X", "Y", "Z"))
    assert saved_path.read_bytes() == before
    assert os.listdir(saved_path.parent) == [saved_path.name]  # no temp file left behind
    assert load_checkpoint(saved_path).labels == LABELS


def test_checkpoint_save_rejects_label_count_mismatch(tmp_path, tiny_network):
    with pytest.raises(CheckpointError, match="3 outputs but 2 labels"):
        save(tmp_path / "x.safetensors", tiny_network, labels=("A", "B"), prior=(0.5, 0.5))


def test_checkpoint_stores_ngram_tables_in_half_precision_and_serves_what_was_measured(tmp_path):
    torch.manual_seed(0)
    config = network_config(
        "gru", NameEncoder().vocab_size, len(LABELS), hidden_size=8, ngram_order=3, ngram_buckets=4096, ngram_dim=16
    )
    network = build_network(config).eval()
    batch = NameEncoder().encode_batch(["Hinton", "Li"])
    checkpoint_module.round_to_storage_precision(network)
    measured = network(*batch)
    path = tmp_path / "hybrid.safetensors"
    save(path, network)
    loaded = load_checkpoint(path)
    assert loaded.state_dict["heads.0.ngram_table.weight"].dtype == torch.float16
    assert loaded.state_dict["heads.0.linear.weight"].dtype == torch.float32
    served = loaded.build_network()
    assert served.heads[0].ngram_table.weight.dtype == torch.float32
    torch.testing.assert_close(served(*batch), measured, atol=0, rtol=0)
    full_precision_bytes = 4096 * 16 * 4
    language_model_bytes = sum(t.numel() * t.element_size() for t in LANGUAGE_MODEL.tables().values())
    assert path.stat().st_size - language_model_bytes < full_precision_bytes * 0.6


def test_model_id_names_the_weights_and_answer_shaping_record_not_when_or_how_it_was_trained(tmp_path, tiny_network):
    first = save(tmp_path / "a.safetensors", tiny_network, info={"metrics": {"top1": 0.5}, "training_seconds": 90})
    again = save(tmp_path / "b.safetensors", tiny_network, info={"metrics": {"top1": 0.5}, "training_seconds": 95})
    assert load_checkpoint(tmp_path / "a.safetensors").model_id == load_checkpoint(tmp_path / "b.safetensors").model_id
    assert first.model_id == again.model_id and first.digest != again.digest  # the files differ, the model does not
    with torch.no_grad():
        tiny_network.heads[0].linear.bias[0] += 1.0
    assert save(tmp_path / "c.safetensors", tiny_network).model_id != first.model_id
    assert save(tmp_path / "d.safetensors", tiny_network, prior=(0.6, 0.3, 0.1)).model_id != first.model_id


@pytest.mark.timeout(10)
def test_checkpoint_load_refuses_a_fifo_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(fifo)


def test_checkpoint_load_refuses_a_device_before_reading_it():
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint("/dev/zero")


def test_checkpoint_load_refuses_a_file_over_the_size_limit_before_reading_it(tmp_path, monkeypatch):
    import model.checkpoint as checkpoint_module

    big = tmp_path / "big.safetensors"
    with big.open("wb") as handle:
        handle.truncate(checkpoint_module.MAX_CHECKPOINT_BYTES + 1)  # sparse: no disk, no read
    with pytest.raises(CheckpointError, match="over the 268435456-byte limit"):
        load_checkpoint(big)


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    from model.checkpoint import write_atomically

    target = tmp_path / "metrics.json"
    write_atomically(target, b"old")

    def failing_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, b"new")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_write_together_renames_every_file_in_and_leaves_no_temp_file(tmp_path):
    from model.checkpoint import write_together

    weights, metrics = tmp_path / "model.safetensors", tmp_path / "metrics.json"
    write_together({weights: b"new weights", metrics: b'{"model_id": "new"}'})
    assert weights.read_bytes() == b"new weights" and metrics.read_bytes() == b'{"model_id": "new"}'
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_together_removes_an_old_runs_file_the_new_run_has_no_copy_of(tmp_path):
    """A run with no test names drew no confusion matrix, and the last run's stayed beside its weights."""
    from model.checkpoint import write_together

    weights, picture = tmp_path / "model.safetensors", tmp_path / "confusion_matrix.png"
    picture.write_bytes(b"the last run's picture")
    write_together({weights: b"new weights"}, also_remove=(picture,))
    assert weights.read_bytes() == b"new weights" and not picture.exists()


def test_write_together_never_leaves_old_metrics_beside_new_weights_and_removes_its_temp_files(tmp_path, monkeypatch):
    from model import checkpoint as checkpoint_module

    weights, metrics = tmp_path / "model.safetensors", tmp_path / "metrics.json"
    weights.write_bytes(b"old weights")
    metrics.write_bytes(b'{"model_id": "old"}')
    real_replace, calls = os.replace, []

    def crash_on_second(source, target):  # the process dies between the two renames
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(checkpoint_module.os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_module.write_together({weights: b"new weights", metrics: b'{"model_id": "new"}'})
    assert weights.read_bytes() == b"new weights"
    assert not metrics.exists()  # absent, never the previous run's metrics naming other weights
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_together_refuses_a_target_that_is_a_folder_before_removing_anything(tmp_path):
    """os.replace onto a folder failed after the old metrics.json was already gone."""
    from model import checkpoint as checkpoint_module

    weights, metrics = tmp_path / "model.safetensors", tmp_path / "metrics.json"
    weights.mkdir()
    metrics.write_bytes(b'{"model_id": "old"}')
    with pytest.raises(IsADirectoryError, match="not a regular file"):
        checkpoint_module.write_together({weights: b"new weights", metrics: b'{"model_id": "new"}'})
    assert metrics.read_bytes() == b'{"model_id": "old"}' and weights.is_dir()
    assert not list(tmp_path.glob(".*.tmp"))


def test_remove_stale_temp_files_removes_only_temp_files_of_the_named_targets(tmp_path):
    from model.checkpoint import remove_stale_temp_files

    ours = [tmp_path / ".model.safetensors.k3j2.tmp", tmp_path / ".metrics.json.x9.tmp"]
    others = [tmp_path / ".notes.txt.a1.tmp", tmp_path / "model.safetensors"]
    for path in ours + others:
        path.write_bytes(b"x")
    assert sorted(remove_stale_temp_files(tmp_path, ("model.safetensors", "metrics.json"))) == sorted(ours)
    assert all(path.exists() for path in others) and not any(path.exists() for path in ours)


# A file edited by hand, or written by other code, passes the checksum (the digest has no key): every field
# and tensor behind it is checked, so each of these is refused at load, named, never served.
def _network_dict(tiny, **changes):
    return {**tiny.config.to_dict(), **changes}


def _novelty_dict(**changes):
    return {**LANGUAGE_MODEL.config.to_dict(), **changes}


def _evidence_dict(**changes):
    return {**EvidenceTable().to_dict(), **changes}


HOSTILE_RECORDS = {
    "hidden size as a float": (lambda tiny: {"network": _network_dict(tiny, hidden_size=8.0)}, "network.hidden_size"),
    "bidirectional as text": (lambda tiny: {"network": _network_dict(tiny, bidirectional="yes")}, "true or false"),
    "labels as one string": (lambda tiny: {"labels": "ABC"}, "list of non-empty strings"),
    "an empty label": (lambda tiny: {"labels": ["Alpha", "", "Gamma"]}, "non-empty strings"),
    "integer labels": (lambda tiny: {"labels": [1, 2, 3]}, "non-empty strings"),
    "repeated labels": (lambda tiny: {"labels": ["Alpha", "Alpha", "Gamma"]}, "distinct"),
    "a NaN threshold": (lambda tiny: {"novelty": _novelty_dict(threshold=float("nan"))}, "novelty.threshold"),
    "an infinite threshold": (lambda tiny: {"novelty": _novelty_dict(threshold=float("inf"))}, "novelty.threshold"),
    "a threshold as text": (lambda tiny: {"novelty": _novelty_dict(threshold="-3")}, "novelty.threshold"),
    "an order as a float": (lambda tiny: {"novelty": _novelty_dict(order=3.0)}, "novelty.order"),
    "a huge order": (lambda tiny: {"novelty": _novelty_dict(order=10**9)}, "novelty.order"),
    "a max length as text": (lambda tiny: {"encoder": {**EncoderConfig().to_dict(), "max_length": "64"}}, "max_length"),
    "a zero max length": (lambda tiny: {"encoder": {**EncoderConfig().to_dict(), "max_length": 0}}, "max_length"),
    "a zero evidence floor": (lambda tiny: {"evidence": _evidence_dict(letter_floor=0.0)}, "letter_floor"),
    "a negative evidence floor": (lambda tiny: {"evidence": _evidence_dict(syllable_floor=-0.1)}, "syllable_floor"),
    "scripts as a list": (lambda tiny: {"evidence": _evidence_dict(scripts=["Latin"])}, "evidence.scripts"),
    "placeholders as one string": (lambda tiny: {"novelty": _novelty_dict(placeholders="null")}, "placeholders"),
    "info as text": (lambda tiny: {"info": "trained today"}, "info must be an object"),
    "metrics as text": (lambda tiny: {"info": {"metrics": "good"}}, "info.metrics"),
    "a prior with a NaN": (lambda tiny: {"label_prior": [0.5, float("nan"), 0.2]}, "label prior"),
    "a huge hidden size": (lambda tiny: {"network": _network_dict(tiny, hidden_size=10**8)}, "the file holds"),
    "a huge bag": (
        lambda tiny: {"network": _network_dict(tiny, ngram_order=2, ngram_buckets=2**30, ngram_dim=4)},
        "the file holds",
    ),
    "5000 layers": (lambda tiny: {"network": _network_dict(tiny, num_layers=5000)}, "the file holds"),
    "a huge n-gram order": (lambda tiny: {"network": _network_dict(tiny, ngram_order=10**9)}, "ngram_order"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_RECORDS))
def test_checkpoint_load_refuses_a_record_field_of_the_wrong_type_or_range(tmp_path, tiny_network, case):
    changes, message = HOSTILE_RECORDS[case]
    path = tmp_path / "bad.safetensors"
    write_raw(path, all_tensors(tiny_network), full_record(tiny_network, **changes(tiny_network)))
    with pytest.raises(CheckpointError, match=message) as raised:
        load_checkpoint(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("record_json", ["[1, 2]", "null", '"text"', "1" * 5000, "[" * 100_000])
def test_checkpoint_load_refuses_a_record_that_is_no_json_object(tmp_path, tiny_network, record_json):
    path = tmp_path / "bad.safetensors"
    tensors = all_tensors(tiny_network)
    digest = checkpoint_module._digest(record_json, tensors)
    path.write_bytes(save_safetensors(tensors, metadata={METADATA_KEY: record_json, DIGEST_KEY: digest}))
    with pytest.raises(CheckpointError, match="metadata record is not"):
        load_checkpoint(path)


def _tensors_with(tiny, name, change):
    tensors = all_tensors(tiny)
    tensors[name] = change(tensors[name].clone())
    return tensors


HOSTILE_TENSORS = {
    "a NaN weight": ("rnn.weight_hh_l0", lambda t: t.index_fill_(0, torch.tensor([0]), float("nan")), "NaN"),
    "an infinite weight": ("heads.0.linear.bias", lambda t: t.fill_(float("inf")), "NaN or infinite"),
    "integer weights": ("rnn.weight_hh_l0", lambda t: t.long(), "floating-point"),
    "a temperature of two numbers": ("temperature", lambda t: t.reshape(1).repeat(2), "one positive number"),
    "a negative temperature": ("temperature", lambda t: t.fill_(-1.0), "one positive number"),
    "a zero temperature": ("temperature", lambda t: t.fill_(0.0), "one positive number"),
    "novelty codes out of range": (NOVELTY_PREFIX + "gram_codes_2", lambda t: t + 10**12, "increasing codes below"),
    "novelty codes unsorted": (NOVELTY_PREFIX + "gram_codes_2", lambda t: t.flip(0), "increasing codes below"),
    "novelty codes as floats": (NOVELTY_PREFIX + "gram_codes_2", lambda t: t.double(), "1-D int64"),
    "novelty codes and values of two lengths": (NOVELTY_PREFIX + "gram_codes_2", lambda t: t[:-1], "1-D int64"),
    "a NaN novelty value": (NOVELTY_PREFIX + "unigram_log_probs", lambda t: t.fill_(float("nan")), "novelty tables"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TENSORS))
def test_checkpoint_load_refuses_tensors_that_would_answer_wrongly_or_crash_later(tmp_path, tiny_network, case):
    name, change, message = HOSTILE_TENSORS[case]
    path = tmp_path / "bad.safetensors"
    write_raw(path, _tensors_with(tiny_network, name, change), full_record(tiny_network))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_the_shipped_checkpoint_passes_every_check():
    checkpoint = load_checkpoint(DEFAULT_CHECKPOINT_PATH)
    assert checkpoint.labels and checkpoint.novelty_config.order >= 1
