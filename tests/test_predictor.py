import gc
import math

import pytest
import torch

from model.checkpoint import save_checkpoint
from model.encoder import EncoderConfig, NameEncoder, NameEncodingError
from model.networks import NetworkConfig, build_network
from model.predictor import DEFAULT_CHECKPOINT_PATH, DeviceUnavailableError, Predictor, resolve_device

LABELS = ("Alpha", "Beta", "Gamma", "Delta")


@pytest.fixture
def predictor(tmp_path):
    torch.manual_seed(1)
    network = build_network(NetworkConfig("lstm", NameEncoder().vocab_size, len(LABELS), hidden_size=8))
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, network, EncoderConfig(), LABELS)
    return Predictor.from_path(path, device="cpu")


def test_predictor_returns_sorted_top_k_in_input_order(predictor):
    names = ["Wolfeschlegelsteinhausen", "Li", "Nguyễn", "O'Neil"]
    results = predictor.predict(names, top_k=3)
    assert [result.name for result in results] == names
    for result in results:
        probabilities = [p.probability for p in result.predictions]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert {p.label for p in result.predictions} <= set(LABELS)
        assert all(math.isclose(math.exp(p.log_probability), p.probability) for p in result.predictions)


def test_predictor_probabilities_sum_to_one_over_all_labels(predictor):
    for result in predictor.predict(["Hinton", "Abe"], top_k=len(LABELS)):
        assert math.isclose(sum(p.probability for p in result.predictions), 1.0, abs_tol=1e-5)


def test_predictor_batching_matches_one_at_a_time(predictor):
    names = [f"Name{'x' * (i % 9)}" for i in range(50)] + ["Li", "Abe"]
    predictor.max_batch_size = 7
    together = predictor.log_probabilities(names)
    alone = torch.cat([predictor.log_probabilities([name]) for name in names])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_predictor_rejects_bad_top_k_and_bad_names(predictor):
    with pytest.raises(ValueError, match="top_k"):
        predictor.predict(["Hinton"], top_k=0)
    with pytest.raises(ValueError, match="top_k"):
        predictor.predict(["Hinton"], top_k=len(LABELS) + 1)
    with pytest.raises(NameEncodingError, match="no letters"):
        predictor.predict(["Hinton", "1234"])
    with pytest.raises(NameEncodingError, match="empty list"):
        predictor.predict([])


def test_resolve_device_never_falls_back_silently(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")


def test_shipped_default_checkpoint_loads_and_is_small():
    assert DEFAULT_CHECKPOINT_PATH.stat().st_size < 5 * 1024 * 1024
    predictor = Predictor.from_path(device="cpu")
    assert len(predictor.labels) == 18
    assert predictor.checkpoint.info["data_fingerprint"].startswith("sha256:")
    assert predictor.predict(["Nguyễn"], top_k=1)[0].predictions[0].label in predictor.labels


def test_predict_cli_prints_top_3_per_name(capsys):
    from model.predict import main

    assert main(["Hinton", "Nguyễn", "--device", "cpu"]) == 0
    output = capsys.readouterr().out
    assert "> Hinton" in output and "> Nguyễn" in output
    assert output.count("%") == 6


def test_predict_cli_reports_bad_name_without_traceback(capsys):
    from model.predict import main

    assert main(["123", "--device", "cpu"]) == 2
    assert "no letters" in capsys.readouterr().err


def test_predictor_sets_torch_threads_when_asked(tmp_path):
    network = build_network(NetworkConfig("gru", NameEncoder().vocab_size, 2, hidden_size=4))
    save_checkpoint(tmp_path / "t.safetensors", network, EncoderConfig(), ("A", "B"))
    before = torch.get_num_threads()
    try:
        Predictor.from_path(tmp_path / "t.safetensors", device="cpu", num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("enabled_before", [True, False])
def test_predictor_leaves_the_garbage_collector_as_it_found_it(predictor, enabled_before):
    (gc.enable if enabled_before else gc.disable)()
    try:
        predictor.predict(["Hinton", "Nguyen"])
        assert gc.isenabled() is enabled_before
    finally:
        gc.enable()


def test_shipped_predictor_reads_one_letter_names_alone_and_together():
    shipped = Predictor.from_path(device="cpu")
    assert [result.name for result in shipped.predict(["A"])] == ["A"]
    together = shipped.predict(["X", "O", "Li"])
    assert [result.name for result in together] == ["X", "O", "Li"]
    alone = shipped.predict(["O"])[0].predictions
    assert [p.label for p in together[1].predictions] == [p.label for p in alone]
    # The same to 1e-5, the padding-invariance bound (batch size can change a matrix product's summation order).
    assert [p.probability for p in together[1].predictions] == pytest.approx([p.probability for p in alone], abs=1e-5)


def test_predictor_rank_gives_predicts_labels_and_probabilities_as_lists(predictor):
    names = ["Wolfeschlegelsteinhausen", "Li", "Nguyễn"]
    ranked = predictor.rank(names, top_k=3)
    predicted = predictor.predict(names, top_k=3)
    assert len(ranked.label_ids) == len(names)
    for row_ids, row_probs, row_log_probs, prediction in zip(*ranked, predicted):
        assert [predictor.labels[i] for i in row_ids] == [p.label for p in prediction.predictions]
        assert row_probs == [p.probability for p in prediction.predictions]
        assert row_log_probs == [p.log_probability for p in prediction.predictions]


def test_ranked_labels_rows_and_top_are_slices_of_the_sorted_rows(predictor):
    ranked = predictor.rank(["Hinton", "Li", "Abe"], top_k=3)
    middle = ranked.rows(1, 2)
    assert middle.label_ids == ranked.label_ids[1:2] and middle.probabilities == ranked.probabilities[1:2]
    top_one = ranked.top(1)
    assert top_one.label_ids == [row[:1] for row in ranked.label_ids]
    assert top_one.log_probabilities == [row[:1] for row in ranked.log_probabilities]
    assert ranked.top(3) is ranked  # nothing to cut


@pytest.mark.parametrize("method", ["rank", "predict"])
def test_predictor_builds_big_answers_without_a_cyclic_collection(predictor, method):
    """Every 700 fresh result lists would wake the collector, whose full passes over a big process's
    heap cost more than the model (the bench's process: 114k -> 81k names/s). Paused, it runs once,
    when it is switched back on."""
    names = [f"Name{'x' * (i % 9)}{i}" for i in range(2000)]
    getattr(predictor, method)(names, 3)  # encodings cached, as for names a service sees again
    phases: list[str] = []
    gc.collect()
    gc.callbacks.append(lambda phase, info: phase == "start" and phases.append(phase))
    try:
        getattr(predictor, method)(names, 3)
        collections_started = len(phases)  # an int: allocates nothing the collector tracks
    finally:
        gc.callbacks.pop()
    assert collections_started <= 1


def test_predictor_keeps_the_collector_off_until_the_last_overlapping_call_ends(predictor, monkeypatch):
    """Calls in two threads whose pauses overlap: the first one ending must not switch the collector
    back on under the second, and the last one ending must switch it on."""
    import threading

    inside = {"first": threading.Event(), "second": threading.Event()}
    release = {"first": threading.Event(), "second": threading.Event()}
    real_log_probabilities = predictor.log_probabilities

    def held_log_probabilities(names):  # runs inside predict's pause
        name = threading.current_thread().name
        inside[name].set()
        assert release[name].wait(10)
        return real_log_probabilities(names)

    monkeypatch.setattr(predictor, "log_probabilities", held_log_probabilities)
    gc.enable()
    threads = {name: threading.Thread(target=predictor.predict, args=([name.title()],), name=name) for name in inside}
    try:
        for name, thread in threads.items():
            thread.start()
            assert inside[name].wait(10)
        release["first"].set()
        threads["first"].join(10)
        off_while_second_runs = not gc.isenabled()
        release["second"].set()
        threads["second"].join(10)
        assert off_while_second_runs
        assert gc.isenabled()
    finally:
        for event in release.values():
            event.set()
        gc.enable()
