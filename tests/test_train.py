import json
import math
import re

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.predictor import Predictor
from tests.names_fixtures import synthetic_names, write_names_dir
from training.augment import derive_gender_forms, training_splits
from training.config import TrainConfig
from training.data import NameRecord, load_names_dir, split_of
from training.evaluate import evaluate
from training.fit import stopping_key
from training.losses import any_label_loss, class_weights, label_counts, log_prior, name_weights
from training.splits import EncodedSplit
from training.train import main, parse_args, scored_metrics, train


@pytest.fixture(scope="module")
def tiny_names_dir(tmp_path_factory):
    return write_names_dir(tmp_path_factory.mktemp("names"), synthetic_names(per_label=150))


def tiny_config(names_dir, output_dir, **changes) -> TrainConfig:
    values = dict(
        data_dir=str(names_dir),
        output_dir=str(output_dir),
        hidden_size=24,
        epochs=6,
        batch_size=32,
        learning_rate=0.01,
        num_threads=1,
        patience=6,
        num_heads=1,
    )
    return TrainConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def trained(tiny_names_dir, tmp_path_factory):
    return train(tiny_config(tiny_names_dir, tmp_path_factory.mktemp("run")))


@pytest.mark.timeout(120)
def test_train_beats_chance_by_a_wide_margin(trained, tiny_names_dir):
    predictor = Predictor.from_path(trained.checkpoint_path, device="cpu")
    metrics = evaluate(predictor, str(tiny_names_dir), "test")
    assert metrics["num_names"] > 20
    assert metrics["top1"] > 0.8  # chance is 1/3
    assert metrics["top1"] == pytest.approx(trained.metrics["metrics"]["test"]["top1"])


def test_train_writes_checkpoint_metrics_and_plots(trained, tiny_names_dir):
    output_dir = trained.checkpoint_path.parent
    for filename in ("model.safetensors", "metrics.json", "confusion_matrix.png", "learning_curve.png"):
        assert (output_dir / filename).stat().st_size > 0
    assert (output_dir / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert len(metrics["history"]) >= 1 and {"val", "test", "held_out_run_test"} <= set(metrics["metrics"])
    checkpoint = load_checkpoint(trained.checkpoint_path)
    assert checkpoint.info["data_fingerprint"] == load_names_dir(tiny_names_dir).fingerprint
    assert checkpoint.info["split_rule"].startswith("key = NFKC")
    assert checkpoint.info["training"]["config"]["hidden_size"] == 24
    assert checkpoint.info["metrics"]["test"]["top1"] == pytest.approx(metrics["metrics"]["test"]["top1"])
    assert checkpoint.labels == ("Ezish", "Ovish", "Skiish")
    assert metrics["model_id"] == checkpoint.model_id  # the metrics name the weights they describe
    assert not list(output_dir.glob(".*.tmp"))  # every write was renamed into place


@pytest.mark.timeout(120)
def test_train_is_deterministic_for_a_fixed_seed_on_cpu(tiny_names_dir, tmp_path):
    first = train(tiny_config(tiny_names_dir, tmp_path / "a", epochs=2, num_heads=2))
    second = train(tiny_config(tiny_names_dir, tmp_path / "b", epochs=2, num_heads=2))
    first_weights, second_weights = (load_checkpoint(r.checkpoint_path).state_dict for r in (first, second))
    assert all(torch.equal(first_weights[key], second_weights[key]) for key in first_weights)
    assert first.metrics["history"][-1]["train_loss"] == second.metrics["history"][-1]["train_loss"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("architecture", ["concat", "rnn", "lstm"])
def test_train_runs_every_architecture(tiny_names_dir, tmp_path, architecture):
    bag = {"ngram_order": 0} if architecture == "concat" else {}  # the concat cell reads characters only
    result = train(tiny_config(tiny_names_dir, tmp_path, architecture=architecture, epochs=1, pooling="last", **bag))
    assert load_checkpoint(result.checkpoint_path).network_config.architecture == architecture


@pytest.mark.parametrize("changes", [{"ngram_order": 5}, {"ngram_order": 0, "num_heads": 2}], ids=["n-grams", "heads"])
def test_a_concat_recipe_with_n_grams_or_heads_is_refused_not_rewritten(tiny_names_dir, tmp_path, changes):
    config = tiny_config(tiny_names_dir, tmp_path, architecture="concat", **{"num_heads": 1, **changes})
    with pytest.raises(ValueError, match="--ngram-order 0 --num-heads 1"):
        train(config)
    assert not (tmp_path / "model.safetensors").exists()


def test_class_weights_balance_label_totals():
    label_ids = torch.tensor([0] * 90 + [1] * 10)
    counts = torch.tensor([90.0, 10.0])
    balanced = class_weights(counts, power=1.0)
    assert balanced[0] * 90 == pytest.approx(balanced[1] * 10)
    assert torch.allclose(class_weights(counts, power=0.0), torch.ones(2))
    assert (balanced[label_ids]).mean() == pytest.approx(1.0)


def test_label_counts_count_a_family_with_a_derived_form_once():
    records = [
        NameRecord("Ivanov", frozenset({"Russian"}), 0.5),
        NameRecord("Ivanova", frozenset({"Russian"}), 0.5),
        NameRecord("Smith", frozenset({"English"})),
        NameRecord("Lee", frozenset({"English", "Korean"})),
    ]
    assert label_counts(records, ("English", "Korean", "Russian")).tolist() == [2.0, 1.0, 1.0]


def test_parse_args_defaults_come_from_train_config():
    assert parse_args([]) == TrainConfig()
    assert parse_args(["--no-bidirectional", "--hidden-size", "7"]).bidirectional is False


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--epochs", "-3"], "epochs must be at least 1"),
        (["--batch-size", "0"], "batch_size must be at least 1"),
        (["--grad-clip", "-1"], "grad_clip must be a finite number above 0"),
        (["--grad-clip", "0"], "grad_clip must be a finite number above 0"),
        (["--learning-rate", "inf"], "learning_rate must be a finite number above 0"),
        (["--class-weight-power", "nan"], "class_weight_power must be a finite number of at least 0"),
        (["--char-dropout", "2"], r"char_dropout must be in \[0, 1\)"),
        (["--novelty-order", "0"], "novelty_order must be at least 2"),
        (["--novelty-val-quantile", "2"], r"novelty_val_quantile must be in \[0, 1\)"),
        (["--num-threads", "-1"], "num_threads must be at least 0"),
    ],
)
def test_train_refuses_a_recipe_that_trains_nothing_before_any_work(tmp_path, capsys, flags, message):
    """Each wrote an untrained or anti-trained model over the last one with exit 0, or a traceback, or
    failed only after both training runs."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(tmp_path / "absent"), "--output-dir", str(tmp_path / "out"), *flags])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_train_main_reports_an_unavailable_device_in_one_line(tiny_names_dir, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--data-dir", str(tiny_names_dir), "--output-dir", str(tmp_path / "out"), "--device", "cuda"]) == 2
    assert "cuda" in caplog.text.lower() and "Traceback" not in caplog.text


def test_train_main_reports_bad_data_dir_without_traceback(tmp_path, caplog):
    assert main(["--data-dir", str(tmp_path / "absent"), "--output-dir", str(tmp_path / "out")]) == 2
    assert "not a folder" in caplog.text


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy():
    from training.metrics import expected_calibration_error

    assert expected_calibration_error(torch.tensor([0.75] * 4), [True, True, True, False]) == pytest.approx(0.0)
    assert expected_calibration_error(torch.tensor([0.99] * 4), [False] * 4) == pytest.approx(0.99)


@pytest.mark.timeout(120)
def test_train_survives_a_run_of_very_few_steps(tiny_names_dir, tmp_path):
    result = train(tiny_config(tiny_names_dir, tmp_path, epochs=1, batch_size=512))  # one optimizer step
    assert result.checkpoint_path.is_file()


def test_any_label_loss_credits_mass_on_any_of_a_names_labels():
    mask = torch.tensor([[True, True, False]])
    weights = torch.ones(1)
    split = torch.log(torch.tensor([[0.5, 0.5, 1e-9]]))
    one_side = torch.log(torch.tensor([[1.0 - 2e-9, 1e-9, 1e-9]]))
    wrong = torch.log(torch.tensor([[0.05, 0.05, 0.9]]))
    # All mass on either label of a two-label name is as good as splitting it; mass elsewhere is not.
    assert any_label_loss(split, mask, weights) == pytest.approx(0.0, abs=1e-6)
    assert any_label_loss(one_side, mask, weights) == pytest.approx(0.0, abs=1e-6)
    assert any_label_loss(wrong, mask, weights) == pytest.approx(-math.log(0.1), rel=1e-5)


def test_name_weights_take_the_largest_label_weight_and_average_one():
    label_weights = torch.tensor([1.0, 4.0, 2.0])
    mask = torch.tensor([[True, False, False], [True, True, False], [False, False, True]])
    weights = name_weights(mask, label_weights, torch.ones(3))
    assert weights.mean() == pytest.approx(1.0)
    assert (weights / weights[0]).tolist() == pytest.approx([1.0, 4.0, 2.0])
    halved = name_weights(mask, label_weights, torch.tensor([1.0, 0.5, 0.5]))
    assert (halved / halved[0]).tolist() == pytest.approx([1.0, 2.0, 1.0])


def test_refit_trains_on_train_and_val_for_the_epochs_val_picked(trained, tiny_names_dir):
    dataset = load_names_dir(tiny_names_dir)
    metrics = trained.metrics
    assert len(metrics["refit_history"]) == metrics["best_epoch"]
    assert metrics["num_train_names"] == len(dataset.split("train")) + len(dataset.split("val"))
    assert all("val_top1" not in entry for entry in metrics["refit_history"])  # val is training data there
    checkpoint = load_checkpoint(trained.checkpoint_path)
    assert checkpoint.info["training"]["config"]["refit"] is True
    assert "held-out run" in checkpoint.info["metrics_note"]
    network = checkpoint.build_network()  # the val-fitted calibration travels to the refit network
    assert float(network.temperature) == pytest.approx(metrics["temperature"])
    expected_bias = -metrics["bias_strength"] * log_prior(dataset.split("train"), dataset.labels)
    torch.testing.assert_close(network.label_bias, expected_bias)


@pytest.mark.timeout(120)
def test_refit_starts_from_the_held_out_runs_first_weights(tiny_names_dir, tmp_path, monkeypatch):
    import training.fit as train_module

    starts = []
    real_build = train_module.build_network

    def recording_build(config):
        network = real_build(config)
        starts.append({key: value.clone() for key, value in network.state_dict().items()})
        return network

    monkeypatch.setattr(train_module, "build_network", recording_build)
    train(tiny_config(tiny_names_dir, tmp_path, epochs=2))
    held_out_start, refit_start = starts
    assert all(torch.equal(held_out_start[key], refit_start[key]) for key in held_out_start)


@pytest.mark.timeout(120)
def test_train_without_refit_saves_the_held_out_network(tiny_names_dir, tmp_path, trained):
    result = train(tiny_config(tiny_names_dir, tmp_path, refit=False))
    assert "refit_history" not in result.metrics and "held_out_run_test" not in result.metrics["metrics"]
    predictor = Predictor.from_path(result.checkpoint_path, device="cpu")
    dataset = load_names_dir(tiny_names_dir)
    saved_val = scored_metrics(
        predictor.network,
        EncodedSplit.of(dataset.split("val"), dataset.labels, predictor.encoder),
        dataset.labels,
        predictor.device,
    )
    assert saved_val["top1"] == pytest.approx(result.metrics["metrics"]["val"]["top1"])
    # Same seed and start; the refit run saw val as well, so it ends with other weights.
    refit_weights = load_checkpoint(trained.checkpoint_path).state_dict
    held_out_weights = load_checkpoint(result.checkpoint_path).state_dict
    assert not all(torch.equal(refit_weights[key], held_out_weights[key]) for key in refit_weights)


def test_evaluate_warns_that_a_refit_networks_val_metrics_are_not_held_out(trained, tiny_names_dir, caplog):
    predictor = Predictor.from_path(trained.checkpoint_path, device="cpu")
    evaluate(predictor, str(tiny_names_dir), "test")
    assert "refit" not in caplog.text
    evaluate(predictor, str(tiny_names_dir), "val")
    assert "refit on train + val" in caplog.text


def test_early_stopping_ranks_epochs_by_top1_before_macro_f1():
    spike = {"top1": 0.845, "macro_f1": 0.626}  # a small label's lucky epoch
    later = {"top1": 0.857, "macro_f1": 0.611}
    assert stopping_key(later) > stopping_key(spike)
    assert stopping_key({"top1": 0.857, "macro_f1": 0.62}) > stopping_key(later)


@pytest.fixture(scope="module")
def slavic_names_dir(tmp_path_factory):
    """The fixture's -ov and -ski names under labels whose surnames inflect by gender."""
    names = synthetic_names(per_label=150)
    return write_names_dir(
        tmp_path_factory.mktemp("slavic"),
        {"Russian": names["Ovish"], "Polish": names["Skiish"], "Spanish": names["Ezish"]},
    )


def test_training_splits_put_each_derived_form_in_its_source_names_split(slavic_names_dir):
    dataset = load_names_dir(slavic_names_dir)
    splits = training_splits(dataset, gender_forms=True)
    derived = [record for forms in splits.derived.values() for record in forms]
    assert len(derived) > 250  # nearly every -ov and -ski name has a form
    sources = {form.record.name: form.source for form in derive_gender_forms(list(dataset.records))}
    for split, forms in splits.derived.items():
        for form in forms:
            assert form.labels in (frozenset({"Russian"}), frozenset({"Polish"})) and form.share == 0.5
            assert split_of(sources[form.name]) == split, form.name  # its source's split, whatever its own hash
    crossing = [name for name, source in sources.items() if split_of(name) != split_of(source)]
    assert crossing  # so the rule above is what keeps them in place
    assert all(record.share == 1.0 for record in splits.names["train"] if record.labels == frozenset({"Spanish"}))
    assert not training_splits(dataset, gender_forms=False).derived["train"]


def test_training_splits_give_a_derived_form_its_share_of_the_family_weight(slavic_names_dir):
    dataset = load_names_dir(slavic_names_dir)
    splits = training_splits(dataset, gender_forms=True, form_share=0.25)
    sources = {form.source for form in derive_gender_forms(list(dataset.records))}
    assert {record.share for forms in splits.derived.values() for record in forms} == {0.25}
    assert {record.share for record in splits.names["train"] if record.name in sources} == {0.75}
    with pytest.raises(ValueError, match="form_share"):
        training_splits(dataset, gender_forms=True, form_share=1.0)


@pytest.mark.timeout(180)
def test_train_learns_the_derived_forms_and_reports_them_apart(slavic_names_dir, tmp_path):
    result = train(tiny_config(slavic_names_dir, tmp_path))
    metrics = result.metrics
    assert metrics["num_gender_forms"]["train"] > 150
    assert metrics["metrics"]["test_gender_forms"]["top1"] > 0.8
    assert metrics["metrics"]["test"]["num_names"] == len(load_names_dir(slavic_names_dir).split("test"))
    checkpoint = load_checkpoint(result.checkpoint_path)
    assert len(checkpoint.label_prior) == 3 and sum(checkpoint.label_prior) == pytest.approx(1.0, abs=1e-3)
    assert checkpoint.novelty_config.val_quantile == TrainConfig().novelty_val_quantile


@pytest.mark.parametrize("kind", ["empty", "a file", "too long a name"])
def test_train_refuses_an_output_folder_it_cannot_write_before_reading_any_data(tmp_path, kind):
    """Each failed only once training was done (minutes, for the default recipe); an empty name wrote
    into the working directory."""
    (tmp_path / "a-file").write_text("not a folder")
    output_dir = {"empty": "", "a file": str(tmp_path / "a-file"), "too long a name": str(tmp_path / ("x" * 300))}[kind]
    config = TrainConfig(data_dir=str(tmp_path / "no-such-data"), output_dir=output_dir)  # reading it would fail
    with pytest.raises((ValueError, OSError), match="output"):
        train(config)
    assert not (tmp_path / "a-file").is_dir()


def test_train_removes_the_output_folder_it_made_when_it_fails_before_writing(tmp_path):
    config = TrainConfig(data_dir=str(tmp_path / "no-such-data"), output_dir=str(tmp_path / "new" / "run"))
    with pytest.raises((ValueError, OSError)):
        train(config)
    assert not (tmp_path / "new" / "run").exists()


def test_evaluate_takes_the_checkpoint_as_an_option_as_the_other_commands_do(tmp_path, capsys):
    from training.evaluate import main as evaluate_main

    missing = tmp_path / "missing.safetensors"
    assert evaluate_main(["--checkpoint", str(missing)]) == 2
    assert f"{missing}: cannot read checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_main([str(missing), "--checkpoint", str(tmp_path / "other.safetensors")])
    assert "two checkpoints given" in capsys.readouterr().err


def test_confusion_counts_leave_out_the_names_abstained_on():
    """Their argmax was drawn, 3 of the shipped model's 12 test abstentions as right answers."""
    from training.metrics import confusion_counts

    records = [
        NameRecord("Smith", frozenset({"A"})),
        NameRecord("qwerty", frozenset({"A"})),
        NameRecord("Ivanov", frozenset({"B"})),
    ]
    log_probs = torch.log(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]))
    assert confusion_counts(records, log_probs, ("A", "B")).trace() == 3
    counts = confusion_counts(records, log_probs, ("A", "B"), abstained=[False, True, False])
    assert counts.tolist() == [[1, 0], [0, 1]]
