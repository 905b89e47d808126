import zipfile
from pathlib import Path

from tests.names_fixtures import synthetic_names, write_names_dir
from training.data import load_names_dir
from training.fetch_data import EXPECTED_FINGERPRINT, main

SHARED_NAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "names"
REPO_NAMES = Path(__file__).resolve().parents[1] / "data" / "names"
CANONICAL = SHARED_NAMES if SHARED_NAMES.is_dir() else REPO_NAMES


def make_zip(source: Path, zip_path: Path) -> str:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(source.glob("*.txt")):
            archive.write(path, f"data/names/{path.name}")
        archive.writestr("data/eng-fra.txt", "ignored\n")
    return zip_path.as_uri()


def test_fetch_from_local_folder_verifies_the_canonical_dataset(tmp_path, capsys):
    assert main(["--from", str(CANONICAL), "--dest", str(tmp_path / "names")]) == 0
    assert len(list((tmp_path / "names").glob("*.txt"))) == 18
    assert load_names_dir(tmp_path / "names").fingerprint == EXPECTED_FINGERPRINT
    assert EXPECTED_FINGERPRINT in capsys.readouterr().out


def test_fetch_downloads_and_extracts_the_tutorial_zip(tmp_path):
    url = make_zip(CANONICAL, tmp_path / "data.zip")
    assert main(["--url", url, "--dest", str(tmp_path / "names")]) == 0
    assert sorted(p.name for p in (tmp_path / "names").iterdir()) == sorted(p.name for p in CANONICAL.glob("*.txt"))


def test_fetch_refuses_data_with_another_fingerprint_and_writes_nothing(tmp_path, capsys):
    source = write_names_dir(tmp_path / "other", synthetic_names(per_label=5))
    url = make_zip(source, tmp_path / "data.zip")
    assert main(["--url", url, "--dest", str(tmp_path / "names")]) == 2
    assert "does not match" in capsys.readouterr().err
    assert list((tmp_path / "names").glob("*")) == []


def test_fetch_reports_a_broken_archive(tmp_path, capsys):
    (tmp_path / "data.zip").write_bytes(b"not a zip")
    assert main(["--url", (tmp_path / "data.zip").as_uri(), "--dest", str(tmp_path / "names")]) == 2
    assert "not a zip archive" in capsys.readouterr().err


def test_fetch_accepts_any_fingerprint_when_told_to(tmp_path):
    source = write_names_dir(tmp_path / "other", synthetic_names(per_label=5))
    assert main(["--from", str(source), "--dest", str(tmp_path / "names"), "--expected-fingerprint", ""]) == 0
    assert len(list((tmp_path / "names").glob("*.txt"))) == 3


def test_fetch_reports_missing_local_folder(tmp_path, capsys):
    assert main(["--from", str(tmp_path / "absent"), "--dest", str(tmp_path / "names")]) == 2
    assert "no <Label>.txt files" in capsys.readouterr().err


def test_fetch_without_network_says_how_to_use_a_local_copy(tmp_path, capsys):
    unreachable = "http://127.0.0.1:9/data.zip"  # the discard port: nothing listens, the connection is refused
    assert main(["--url", unreachable, "--dest", str(tmp_path / "names")]) == 2
    error = capsys.readouterr().err
    assert f"cannot download {unreachable}" in error and "--from DIR" in error
    assert not list((tmp_path / "names").glob("*.txt"))


def test_fetch_refuses_a_destination_holding_another_label_file(tmp_path, capsys):
    """It printed "verified" while Klingon.txt beside the installed files made a 19th label."""
    destination = tmp_path / "names"
    destination.mkdir()
    (destination / "Klingon.txt").write_text("Qapla\n")
    source = write_names_dir(tmp_path / "other", synthetic_names(per_label=5))
    assert main(["--from", str(source), "--dest", str(destination), "--expected-fingerprint", ""]) == 2
    assert "also holds Klingon.txt" in capsys.readouterr().err
    assert sorted(path.name for path in destination.iterdir()) == ["Klingon.txt"]
