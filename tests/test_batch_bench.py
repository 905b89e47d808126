"""bench/batch.py's pieces (the whole measurement runs at --quick sizes in the bench smoke test)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from bench.batch import BLANKS, JUNK, check_answers, generate_rows, run_command
from model.predictor import Predictor
from tests.batch_fixtures import tiny_checkpoint_path

NAMES = ["Bakov", "Ziski", "Tamaez"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint_path(tmp_path_factory)


def test_generate_rows_draws_names_with_about_five_percent_blanks_and_junk():
    table = generate_rows(NAMES, 20_000, seed=3)
    surnames = table.column("surname").to_pylist()
    assert table.num_rows == 20_000 and table.column("id").to_pylist()[:2] == ["000000000", "000000001"]
    other = sum(name in BLANKS or name in JUNK for name in surnames)
    assert 0.04 < other / len(surnames) < 0.06
    assert set(surnames) - set(BLANKS) - set(JUNK) == set(NAMES)
    assert generate_rows(NAMES, 100, seed=3).equals(generate_rows(NAMES, 100, seed=3))


def test_check_answers_counts_a_row_whose_answer_was_changed(tmp_path, checkpoint):
    pcsv.write_csv(generate_rows(NAMES, 300), tmp_path / "in.csv")
    run = run_command(
        [
            str(tmp_path / "in.csv"),
            "--column",
            "surname",
            "--output",
            str(tmp_path / "out.csv"),
            "--checkpoint",
            str(checkpoint),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert run.seconds > 0 and 50 < run.peak_rss_mib < 4096
    predictor = Predictor.from_path(checkpoint, device="cpu")
    rows, distinct, wrong = check_answers(predictor, tmp_path / "in.csv", tmp_path / "out.csv")
    assert (rows, wrong) == (300, 0) and distinct >= len(NAMES)
    as_written = pcsv.ConvertOptions(
        column_types={"id": pa.string(), "surname": pa.string()},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    output = pcsv.read_csv(tmp_path / "out.csv", convert_options=as_written)
    probabilities = output.column("origin_probability").to_pylist()
    first = next(index for index, value in enumerate(probabilities) if value is not None)
    probabilities[first] += 0.01
    output = output.set_column(
        output.schema.get_field_index("origin_probability"), "origin_probability", pa.array(probabilities)
    )
    pcsv.write_csv(output, tmp_path / "changed.csv")
    assert check_answers(predictor, tmp_path / "in.csv", tmp_path / "changed.csv")[2] == 1
