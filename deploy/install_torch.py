"""Install the torch build this machine should run, before the package: `python deploy/install_torch.py`.

`pip install torch==X` from the public package index installs the CUDA build on Linux (a ~530 MB
wheel that pulls several GB of CUDA libraries), whatever the machine has. So the build is chosen
here, then fetched from PyTorch's own index for that build:

- `--torch auto` (the default; `make ... TORCH=cpu|cu126|cu128` sets it): `cu128` when an NVIDIA GPU
  answers `nvidia-smi -L`, else `cpu`.
- The wheel comes from https://download.pytorch.org/whl/<build>. When that index cannot be reached
  (as on this project's machines, where a local CPU wheel serves the pin), from the configured
  package index instead, but only after pip's dry run (metadata only, no wheel download) shows
  that it would install the build asked for: a CPU machine never downloads CUDA wheels.

Run with the interpreter of the virtualenv to install into. `--dry-run` prints the plan only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TORCH_VERSION = "2.13.0"
GPU_BUILD = "cu128"  # the CUDA build `auto` picks on a machine with an NVIDIA GPU
BUILDS = ("cpu", "cu126", "cu128")
PYTORCH_INDEX = "https://download.pytorch.org/whl/{build}"
PROBE_TIMEOUT_S = 10


class TorchInstallError(RuntimeError):
    """The build asked for cannot be installed from any index this machine reaches."""


@dataclass(frozen=True)
class Candidate:
    """What pip would install for the pin: its version and whether it is a CUDA build."""

    version: str
    url: str
    needs_cuda: bool  # it requires NVIDIA's CUDA wheels (nvidia-*), as PyPI's Linux torch does


def gpu_present() -> bool:
    """An NVIDIA GPU that the driver lists."""
    if shutil.which("nvidia-smi") is None:
        return False
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    return listed.returncode == 0 and "GPU" in listed.stdout


def choose_build(requested: str, has_gpu: bool) -> str:
    """The build to install: the one asked for, or for `auto` the GPU build where a GPU is present."""
    if requested == "auto":
        return GPU_BUILD if has_gpu else "cpu"
    if requested not in BUILDS:
        raise TorchInstallError(f"TORCH must be auto or one of {', '.join(BUILDS)}; got {requested!r}")
    return requested


def index_reachable(url: str) -> bool:
    """Whether PyTorch's index for a build answers (its torch page, the one pip reads)."""
    try:
        with urllib.request.urlopen(f"{url}/torch/", timeout=PROBE_TIMEOUT_S) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def candidate_from_report(report: dict) -> Candidate:
    """The torch entry of `pip install --dry-run --report` output."""
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        if metadata.get("name", "").lower() == "torch":
            requires = metadata.get("requires_dist") or []
            return Candidate(
                version=metadata.get("version", ""),
                url=item.get("download_info", {}).get("url", ""),
                needs_cuda=any(requirement.lower().startswith("nvidia-") for requirement in requires),
            )
    raise TorchInstallError("pip's dry run lists no torch to install")


def fallback_acceptable(candidate: Candidate, build: str) -> bool:
    """A wheel from the plain index is the right build: no CUDA libraries for cpu, CUDA for a cu build."""
    return not candidate.needs_cuda if build == "cpu" else candidate.needs_cuda


def dry_run(python: str, version: str) -> Candidate:
    """What the configured index would install for torch==version, without downloading the wheel."""
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "report.json"
        command = [python, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed"]
        command += ["--report", str(report_path), f"torch=={version}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TorchInstallError(f"pip cannot resolve torch=={version} from the configured index:\n{done.stderr}")
        return candidate_from_report(json.loads(report_path.read_text()))


def install_command(python: str, build: str, version: str, reachable: bool) -> list[str]:
    command = [python, "-m", "pip", "install", "--quiet", f"torch=={version}"]
    return [*command, "--index-url", PYTORCH_INDEX.format(build=build)] if reachable else command


def plan(python: str, requested: str, version: str) -> tuple[list[str], str]:
    """The pip command to run and a line saying why; raises TorchInstallError when no index fits."""
    build = choose_build(requested, gpu_present() if requested == "auto" else False)
    index = PYTORCH_INDEX.format(build=build)
    if index_reachable(index):
        return install_command(python, build, version, reachable=True), f"torch {version} ({build}) from {index}"
    candidate = dry_run(python, version)
    if not fallback_acceptable(candidate, build):
        kind = "a CUDA build" if candidate.needs_cuda else "a CPU build"
        raise TorchInstallError(
            f"{index} cannot be reached, and the configured package index would install {kind} of torch "
            f"({candidate.version}, {candidate.url}) where {build} was asked for. Point pip at a {build} wheel "
            f"(PIP_FIND_LINKS or PIP_INDEX_URL) or set TORCH to the build you want."
        )
    return (
        install_command(python, build, version, reachable=False),
        f"torch {candidate.version} ({build}) from the configured index: {index} cannot be reached",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="install_torch.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--torch", default="auto", help=f"auto (default) or one of {', '.join(BUILDS)}")
    parser.add_argument("--version", default=TORCH_VERSION)
    parser.add_argument("--dry-run", action="store_true", help="print the plan, install nothing")
    args = parser.parse_args(argv)
    try:
        command, why = plan(sys.executable, args.torch, args.version)
    except TorchInstallError as error:
        print(f"install_torch: {error}", file=sys.stderr)
        return 2
    print(f"install_torch: {why}", file=sys.stderr)
    if args.dry_run:
        print(" ".join(command))
        return 0
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
