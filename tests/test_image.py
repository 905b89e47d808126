"""The Docker image, built and run as a platform would (deploy/image_test.py does the work).

Runs in `make test`: it starts (or installs) a Docker engine, builds the Dockerfile (on a Debian
base made with debootstrap where no registry answers), runs the container read-only as non-root,
waits for its HEALTHCHECK, compares its answers with the in-process predictor's, checks a clean
SIGTERM exit and validates compose.yaml. No engine at all is a failure, never a skip.
"""

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.timeout(2400)
def test_the_image_builds_runs_healthy_as_non_root_answers_like_the_predictor_and_stops_cleanly():
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "deploy" / "image_test.py")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=2300,
        check=False,
    )
    print(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "image-test: ok" in done.stdout
