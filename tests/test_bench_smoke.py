"""Keeps `python -m bench` from rotting: the whole bench at --quick sizes on a tiny model and folder."""

import shutil
import subprocess

import pytest

from bench.__main__ import DOCS_PAGE, main, parse_args
from bench.full_names import GIVEN_NAME_POOL, full_names
from bench.gru_gate import gate_warning, measured_gate
from bench.report import (
    BEGIN_MARK,
    END_MARK,
    REPO_ROOT,
    Report,
    Row,
    Stats,
    Target,
    interleaved,
    paired_ratio,
    write_page,
)
from tests.names_fixtures import synthetic_names, write_names_dir
from training.config import TrainConfig
from training.train import train

SECTIONS = (
    "1. in-process predictor, batch 4096",
    '1. in-process predictor, 1000 "Given Surname" names a call',
    "2. HTTP /classify 1 name, 64 conn (req/s)",
    "2. HTTP /classify 1 name, 64 conn (p99 vs p50)",
    "3. HTTP /classify 1000 names/request",
    "4. training: val top-1 after",
    "5. server peak RSS after the load runs",
    "6. nameorigin-enrich, ",
    "6. Spark local[2]",
    "7. GRU gate, batch 4096 (names/s)",
    "7. GRU gate: measured (batch size)",
    "9. compute: multiply-adds per name (network)",
    "9. compute: predictor, batch 4096, vs the shape bound",
    "10. explain: true, 1000 names per request",
)


@pytest.fixture(scope="module")
def bench_names_dir(tmp_path_factory):
    return write_names_dir(tmp_path_factory.mktemp("names"), synthetic_names(per_label=60))


@pytest.fixture(scope="module")
def bench_checkpoint(bench_names_dir, tmp_path_factory):
    config = TrainConfig(
        data_dir=str(bench_names_dir),
        output_dir=str(tmp_path_factory.mktemp("run")),
        hidden_size=8,
        epochs=1,
        batch_size=8,
        num_threads=1,  # OneCycleLR needs a few steps per run: 32 would give it 5 and fail
    )
    return train(config).checkpoint_path


@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (CI installs it with apt)")
def test_bench_quick_prints_table_and_writes_page(bench_names_dir, bench_checkpoint, tmp_path, capsys):
    page = tmp_path / "benchmarks.md"
    exit_code = main(
        [
            "--quick",
            "--checkpoint",
            str(bench_checkpoint),
            "--data-dir",
            str(bench_names_dir),
            "--output",
            str(page),
        ]
    )
    table = capsys.readouterr().out
    assert exit_code in (0, 1)
    assert table.startswith("measurement")
    for section in SECTIONS:
        assert section in table
    assert "names never read before" in table
    assert (exit_code == 1) == ("FAIL" in table)  # a missed target is both shown and reported
    text = page.read_text()
    assert "## Results" in text and "| measurement | value | reference | ratio | target | pass/fail |" in text
    assert "- cpu: " in text and "- torch: " in text
    assert "## Where the time goes" in text


def test_report_fails_only_rows_whose_ratio_misses_their_target():
    report = Report(
        rows=[
            Row("fast enough", "30 /s", ratio=30.0, target=Target(at_least=20)),
            Row("too slow", "10 /s", ratio=10.0, target=Target(at_least=20)),
            Row("tail", "p99", ratio=6.0, target=Target(below=5)),
            Row("informational", "1 MiB", ratio=0.1),
        ]
    )
    assert [row.measurement for row in report.failures] == ["too slow", "tail"]
    assert [row.verdict for row in report.rows] == ["pass", "FAIL", "FAIL", ""]


def test_row_shows_a_ratio_just_under_its_target_below_it():
    row = Row("batch", "69.97 /s", ratio=0.6997, target=Target(at_least=0.7))
    assert row.cells[3:] == ("0.69x", ">= 0.7x", "FAIL")


def test_stats_keep_median_and_spread():
    stats = Stats.of([3.0, 1.0, 2.0])
    assert stats.median == 2.0
    assert stats.format("/s") == "2.00 /s (1.00-3.00, n=3)"


def test_paired_ratio_is_the_median_of_back_to_back_pairs():
    # a load burst slowed the second pair's reference only; the medians of each side would say 20x
    values, references = Stats.of([100.0, 100.0, 50.0]), Stats.of([10.0, 5.0, 5.0])
    assert values.median / references.median == 20.0
    assert paired_ratio(values, references) == 10.0


def test_interleaved_runs_every_measure_once_a_round_in_order():
    calls: list[str] = []

    def measure(name: str, value: float):
        return lambda: calls.append(name) or value

    first, second = interleaved(3, measure("a", 1.0), measure("b", 2.0))
    assert calls == ["a", "b"] * 3
    assert (first.samples, second.samples) == ((1.0,) * 3, (2.0,) * 3)


def test_write_page_replaces_only_the_generated_section(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(
        f"# Benchmarks\n\nhand-written intro\n\n{BEGIN_MARK}\nold table\n{END_MARK}\n\n## Method\n\nhand-written\n"
    )
    write_page(page, Report(rows=[Row("1. new row", "5 /s")]))
    text = page.read_text()
    assert "old table" not in text and "| 1. new row | 5 /s |" in text
    assert text.startswith("# Benchmarks\n\nhand-written intro\n\n") and text.endswith("## Method\n\nhand-written\n")


def test_write_page_refuses_a_page_without_the_marks(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nall hand-written\n")
    with pytest.raises(ValueError, match="lacks the marks"):
        write_page(page, Report())
    assert page.read_text() == "# Benchmarks\n\nall hand-written\n"


def test_docs_page_has_one_generated_section_for_the_bench_to_replace():
    text = (REPO_ROOT / "docs" / "benchmarks.md").read_text()
    assert text.count(BEGIN_MARK) == 1 and text.count(END_MARK) == 1
    assert text.index(BEGIN_MARK) < text.index(END_MARK) < text.index("## Method")


def test_quick_run_writes_an_ignored_page_not_the_tracked_docs_page():
    output = parse_args(["--quick"]).output.resolve()
    assert output != DOCS_PAGE.resolve()
    assert output.is_relative_to(REPO_ROOT)
    ignored = subprocess.run(["git", "check-ignore", "-q", str(output)], cwd=REPO_ROOT, check=False)
    assert ignored.returncode == 0, f"{output} is not git-ignored: a smoke run would leave a file to commit"
    assert parse_args([]).output.resolve() == DOCS_PAGE.resolve()


def test_quick_run_refuses_to_write_the_docs_page(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--output", str(DOCS_PAGE)])
    assert "never writes docs/benchmarks.md" in capsys.readouterr().err


def test_measured_gate_is_where_the_hand_written_gru_wins_at_every_larger_size():
    assert measured_gate({1: 0.6, 16: 1.1, 64: 0.9, 256: 1.2, 4096: 1.5}) == 256  # a noisy win at 16 does not count
    assert measured_gate({1: 1.1, 64: 1.2}) == 1
    assert measured_gate({1: 0.6, 4096: 1.0}) is None  # a tie is not a win


def test_gate_warning_only_when_the_code_is_more_than_one_size_step_off():
    sizes = (1, 4, 16, 64, 256, 1024, 4096)
    assert gate_warning(sizes, 256, 128) is None  # 128 sends 256 up to it: the same step
    assert gate_warning(sizes, 1024, 128) is None  # one step off
    assert gate_warning(sizes, 16, 128) is not None  # two steps off
    assert "never faster" in gate_warning(sizes, None, 64)
    assert gate_warning(sizes, None, 8192) is None  # the code never takes it in the measured range either


def test_flop_count_per_name_is_the_gru_steps_and_heads_of_the_shipped_model():
    """The counted work of a name matches the arithmetic of its shapes: 3 gates of (H x H) per
    character still going, plus each head's linear layer, within what the n-gram bag adds."""
    from bench.compute import network_flops_per_name
    from model.predictor import DEFAULT_CHECKPOINT_PATH, Predictor

    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu")
    names = [f"Name{'a' * (index % 9)}" for index in range(256)]
    config = predictor.network.config
    characters = sum(len(predictor.encoder.encode(name)) for name in names) / len(names)
    hidden = config.hidden_size
    features = 2 * hidden + config.ngram_dim  # last state and running max, then the bag
    expected = 2 * (characters * hidden * 3 * hidden + config.num_heads * features * config.num_labels)
    assert network_flops_per_name(predictor, names) == pytest.approx(expected, rel=0.02)


def test_full_names_put_each_surname_after_a_given_name_from_the_pool_in_turn():
    names = [f"Name{index}" for index in range(5 * GIVEN_NAME_POOL + 3)]
    full, surnames = full_names(names)
    assert surnames == names[GIVEN_NAME_POOL:]
    assert full[:2] == [f"Name0 Name{GIVEN_NAME_POOL}", f"Name1 Name{GIVEN_NAME_POOL + 1}"]
    assert full_names(["A", "B", "C", "D", "E", "F", "G"]) == (
        ["A B", "A C", "A D", "A E", "A F", "A G"],
        list("BCDEFG"),
    )
    with pytest.raises(ValueError, match="at least 2"):
        full_names(["Smith"])
