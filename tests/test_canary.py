"""The canary outside the service: a checkpoint that loads but is no sound model is refused by the
command lines and the batch APIs, as the service refuses it, so it never fills a table."""

from __future__ import annotations

import pandas as pd
import pytest

from batch import classify_frame
from batch.cli import main as enrich_main
from model.assets import DEFAULT_CHECKPOINT_PATH
from model.canary import CanaryError, load_checked
from model.predict import main as predict_main
from tests.checkpoint_fixtures import rewritten, with_shuffled_alphabet


@pytest.fixture(scope="module")
def shuffled_checkpoint(tmp_path_factory):
    """The shipped model with its alphabet reversed: it loads, then takes every Latin name for no name."""
    return rewritten(tmp_path_factory.mktemp("canary") / "shuffled.safetensors", with_shuffled_alphabet)


def test_load_checked_refuses_a_broken_model_naming_the_file(shuffled_checkpoint):
    with pytest.raises(
        CanaryError, match=rf"checkpoint {shuffled_checkpoint} loaded but is not a sound model: .*Latin"
    ):
        load_checked(shuffled_checkpoint, device="cpu")


def test_the_shipped_model_passes_the_canary():
    assert load_checked(DEFAULT_CHECKPOINT_PATH, device="cpu").num_labels == 18


def test_model_predict_refuses_a_broken_model_with_exit_2(shuffled_checkpoint, capsys):
    """It printed every name as not-a-name, exit 0."""
    assert predict_main(["--checkpoint", str(shuffled_checkpoint), "--device", "cpu", "Hinton"]) == 2
    captured = capsys.readouterr()
    assert "is not a sound model" in captured.err and "Hinton" not in captured.out


def test_enrich_refuses_a_broken_model_and_writes_nothing(shuffled_checkpoint, tmp_path, capsys):
    """It filled every row with not-a-name, exit 0."""
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("name\nHinton\nRossi\n")
    code = enrich_main(
        [str(source), "--column", "name", "--output", str(output), "--checkpoint", str(shuffled_checkpoint)]
    )
    assert code == 2 and not output.exists()
    assert "is not a sound model" in capsys.readouterr().err


def test_classify_frame_refuses_a_broken_model(shuffled_checkpoint):
    with pytest.raises(CanaryError, match="is not a sound model"):
        classify_frame(pd.DataFrame({"name": ["Hinton"]}), "name", checkpoint_path=shuffled_checkpoint)


def test_a_checkpoint_replaced_in_place_is_loaded_again(tmp_path):
    """The per-process cache was keyed by path: a model retrained in place kept answering as the old one."""
    from batch.predictors import cached_predictor

    path = tmp_path / "model.safetensors"
    path.write_bytes(DEFAULT_CHECKPOINT_PATH.read_bytes())
    first = cached_predictor(path, "cpu")
    assert cached_predictor(path, "cpu") is first
    changed = rewritten(tmp_path / "changed.safetensors", lambda record: record["novelty"].update(threshold=-3.9))
    changed.replace(path)
    second = cached_predictor(path, "cpu")
    assert second is not first and second.model_id != first.model_id
