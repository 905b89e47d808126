"""Fetch the names dataset the way users outside get it (the tutorial's data.zip), or copy it from
a local folder, verify its fingerprint, and only then install it into `data/names/`.

    python -m training.fetch_data                              # download
    python -m training.fetch_data --from ../shared/data/names  # local copy
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from training.data import DataError, load_names_dir

logger = logging.getLogger(__name__)

DATA_URL = "https://download.pytorch.org/tutorial/data.zip"
ZIP_MEMBER_DIR = "data/names/"
# sha256 over the sorted normalized (label, name) pairs of the tutorial's 18 files (training.data).
EXPECTED_FINGERPRINT = "sha256:3591961e2209decb5f32edaafa99c54e309a464798589670631f83d1113dfe90"


def download_zip(url: str, target: Path) -> None:
    """Fetch the archive; a machine that cannot reach it is told how to use a local copy instead."""
    logger.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out)
    except urllib.error.URLError as error:  # DNS, refused, timeout, HTTP errors
        raise DataError(
            f"cannot download {url} ({getattr(error, 'reason', error)}); without network, copy the files from a "
            f"local folder instead: python -m training.fetch_data --from DIR (DIR holding <Label>.txt, such as "
            f"../shared/data/names)"
        ) from error


def extract_names(zip_path: Path, staging: Path) -> None:
    """Copy data/names/*.txt out of the archive; nothing else in it is touched."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [m for m in archive.namelist() if m.startswith(ZIP_MEMBER_DIR) and m.endswith(".txt")]
            if not members:
                raise DataError(f"{zip_path}: archive has no {ZIP_MEMBER_DIR}*.txt files")
            for member in members:
                (staging / Path(member).name).write_bytes(archive.read(member))
    except zipfile.BadZipFile as error:
        raise DataError(f"{zip_path}: not a zip archive ({error})") from error


def fetch(destination: Path, source_dir: Path | None, url: str, expected: str) -> str:
    """Stage the files, verify the fingerprint, then install them; returns the fingerprint."""
    destination.parent.mkdir(parents=True, exist_ok=True)  # the staging folder sits beside it: one file system
    with tempfile.TemporaryDirectory(dir=destination.parent) as temp:
        staging = Path(temp) / "names"
        staging.mkdir()
        if source_dir is not None:
            files = sorted(Path(source_dir).glob("*.txt"))
            if not files:
                raise DataError(f"{source_dir}: no <Label>.txt files found")
            for path in files:
                shutil.copyfile(path, staging / path.name)
        else:
            zip_path = Path(temp) / "data.zip"
            download_zip(url, zip_path)
            extract_names(zip_path, staging)
        fingerprint = load_names_dir(staging).fingerprint
        if expected and fingerprint != expected:
            raise DataError(
                f"dataset fingerprint {fingerprint} does not match the expected {expected}; "
                f"nothing was written to {destination}"
            )
        fetched = {path.name for path in staging.glob("*.txt")}
        others = sorted(
            path.name
            for path in (destination.glob("*.txt") if destination.is_dir() else ())
            if path.name not in fetched and not path.name.startswith(".")
        )
        if others:  # each would be read as one more label beside the verified ones ("verified" was printed)
            raise DataError(
                f"{destination} also holds {', '.join(others)}, which the trainer would read as labels beside the "
                f"dataset's; move them out of it first (nothing was written)"
            )
        destination.mkdir(exist_ok=True)
        for name in sorted(fetched):
            os.replace(staging / name, destination / name)  # each file whole: same file system
    installed = load_names_dir(destination).fingerprint
    if installed != fingerprint:  # changed under us meanwhile: say so rather than "verified"
        raise DataError(f"{destination} reads as {installed} after the install, not the verified {fingerprint}")
    return fingerprint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.fetch_data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--from", dest="source_dir", type=Path, help="copy from this local folder instead of downloading"
    )
    parser.add_argument("--dest", type=Path, default=Path("data/names"), help="default: data/names")
    parser.add_argument("--url", default=DATA_URL, help=f"default: {DATA_URL}")
    parser.add_argument(
        "--expected-fingerprint",
        default=EXPECTED_FINGERPRINT,
        help="refuse data with another fingerprint ('' accepts any)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        fingerprint = fetch(args.dest, args.source_dir, args.url, args.expected_fingerprint)
    except (DataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.dest}: verified {fingerprint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
