"""Build the Dockerfile and check the image as a platform would run it: `python deploy/image_test.py`.

1. A Docker engine: the running one, else dockerd started here, else Debian's docker.io installed
   and started (root or sudo). No engine at all is a failure with the reason, never a pass.
2. A base image: `python:3.11-slim-bookworm` when a registry answers, else one built from Debian
   packages with debootstrap (python3.11 and venv), imported as nameorigin-base:bookworm and reused.
3. The torch wheel: where PyTorch's index cannot be reached, the pinned CPU wheel pip serves here is
   put in deploy/wheels/ for the build (with the host's CA bundle when pip is told to use one).
4. `docker build`, then the container runs read-only as uid 10001 with no capabilities; the test
   waits for its HEALTHCHECK to say healthy, classifies names through it and compares the answers
   with the in-process predictor's, sends SIGTERM and requires exit code 0 with a drained batcher.
5. `docker-compose config` validates compose.yaml.

Prints the image's size. Exit 0 when every check passes, 1 when one fails (with the reason).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WHEELS = REPO_ROOT / "deploy" / "wheels"
OFFICIAL_BASE = "python:3.11-slim-bookworm"
LOCAL_BASE = "nameorigin-base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
IMAGE = "nameorigin:image-test"
CONTAINER = "nameorigin-image-test"
NAMES = ["Hinton", "Nguyen Van Minh", "田中", "김", "Kowalska", "qwerty", "123", "Smith, John", "Ιωάννου"]
HEALTHY_TIMEOUT_S = 180
V2_ONLY_KEYS = ("start_interval:",)  # compose.yaml keys newer than docker-compose v1 (healthcheck, Compose v2.20)


class ImageTestError(RuntimeError):
    """A check failed; the message says which and why."""


def run(command: list[str], timeout: float = 1800, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and done.returncode != 0:
        raise ImageTestError(f"{' '.join(command[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", "-n", *command]


def engine_answers() -> bool:
    return shutil.which("docker") is not None and run(["docker", "info"], timeout=30, check=False).returncode == 0


def ensure_engine() -> None:
    """A Docker engine this process can talk to, started (and installed) if need be."""
    if engine_answers():
        return
    if shutil.which("dockerd") is None:
        print("image-test: no Docker engine; installing Debian's docker.io", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(as_root(["apt-get", "update", "-qq"]), env=env)
        run(as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"]), env=env)
    print("image-test: starting dockerd", file=sys.stderr)
    log = open(Path(tempfile.gettempdir()) / "nameorigin-dockerd.log", "ab")  # noqa: SIM115 -- dockerd outlives this
    subprocess.Popen(as_root(["dockerd"]), stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine_answers():
            return
        time.sleep(1)
    raise ImageTestError(f"no Docker engine could be started (dockerd log: {log.name})")


def image_exists(name: str) -> bool:
    return run(["docker", "image", "inspect", name], timeout=30, check=False).returncode == 0


def ensure_base() -> str:
    """The base image to build from: the official one if a registry serves it, else a Debian one."""
    if image_exists(OFFICIAL_BASE) or run(["docker", "pull", OFFICIAL_BASE], timeout=120, check=False).returncode == 0:
        return OFFICIAL_BASE
    if image_exists(LOCAL_BASE):
        return LOCAL_BASE
    print(f"image-test: no registry answers; building {LOCAL_BASE} with debootstrap", file=sys.stderr)
    if shutil.which("debootstrap") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"]), env=env)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "rootfs"
        command = ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(root)]
        run(as_root([*command, DEBIAN_MIRROR]))
        for clutter in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            run(as_root(["find", str(root / clutter), "-mindepth", "1", "-delete"]), check=False)
        tar = subprocess.Popen(as_root(["tar", "-C", str(root), "-c", "."]), stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-", LOCAL_BASE], stdin=tar.stdout, capture_output=True, check=False
        )
        tar.wait()
        if imported.returncode != 0:
            raise ImageTestError(f"docker import failed: {imported.stderr.decode()[-2000:]}")
        run(as_root(["rm", "-rf", str(root)]), check=False)
    return LOCAL_BASE


def stage_wheels() -> dict[str, str]:
    """Build args that let the build install the pinned CPU torch without PyTorch's index."""
    sys.path.insert(0, str(REPO_ROOT / "deploy"))
    import install_torch

    build_args: dict[str, str] = {}
    if install_torch.index_reachable(install_torch.PYTORCH_INDEX.format(build="cpu")):
        return build_args
    if not list(WHEELS.glob(f"torch-{install_torch.TORCH_VERSION}*.whl")):
        candidate = install_torch.dry_run(sys.executable, install_torch.TORCH_VERSION)
        if candidate.needs_cuda:
            raise ImageTestError(
                f"PyTorch's index is unreachable and pip here would fetch a CUDA torch ({candidate.url})"
            )
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(WHEELS)]
        run([*command, f"torch=={install_torch.TORCH_VERSION}"])
    cert = run([sys.executable, "-m", "pip", "config", "get", "global.cert"], check=False).stdout.strip()
    cert = os.environ.get("PIP_CERT", cert)
    if cert and Path(cert).is_file():
        shutil.copyfile(cert, WHEELS / "ca-bundle.crt")
        build_args["PIP_CERT"] = "/wheels/ca-bundle.crt"
    return build_args


def build(base: str, build_args: dict[str, str]) -> None:
    command = ["docker", "build", "-q", "-t", IMAGE, "--build-arg", f"PYTHON_IMAGE={base}"]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    run([*command, str(REPO_ROOT)], timeout=1800)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(container: str) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while time.monotonic() < deadline:
        state = json.loads(run(["docker", "inspect", "--format", "{{json .State}}", container]).stdout)
        if not state["Running"]:
            logs = run(["docker", "logs", container], check=False)
            raise ImageTestError(f"container exited ({state['ExitCode']}):\n{(logs.stdout + logs.stderr)[-3000:]}")
        if state.get("Health", {}).get("Status") == "healthy":
            return
        time.sleep(1)
    raise ImageTestError(f"container not healthy after {HEALTHY_TIMEOUT_S} s")


def classify(port: int, names: list[str]) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/classify",
        data=json.dumps({"names": names, "top_k": 3}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def check_answers(answer: dict) -> None:
    """The container's answers are the in-process predictor's (labels, order, reasons; probabilities to 1e-6)."""
    sys.path.insert(0, str(REPO_ROOT))
    from model.predictor import Predictor

    predictor = Predictor.from_path(device="cpu")
    if answer["model_id"] != predictor.model_id:
        raise ImageTestError(f"the image serves {answer['model_id']}, the repository's model is {predictor.model_id}")
    for result, expected in zip(answer["results"], predictor.predict(NAMES, top_k=3), strict=True):
        served = [(p["label"], p["probability"]) for p in result["predictions"]]
        local = [(p.label, p.probability) for p in expected.predictions]
        same = [label for label, _ in served] == [label for label, _ in local] and all(
            abs(a - b) <= 1e-6 for (_, a), (_, b) in zip(served, local, strict=True)
        )
        if not same or result["reason"] != expected.reason or result["read_as"] != expected.read_as:
            raise ImageTestError(f"{expected.name!r}: the image answered {result}, in process {expected}")


def run_container() -> None:
    port = free_port()
    run(["docker", "rm", "-f", CONTAINER], check=False)
    command = [
        "docker",
        "run",
        "-d",
        "--name",
        CONTAINER,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--health-interval",
        "2s",
        "-p",
        f"127.0.0.1:{port}:8000",
        IMAGE,
    ]
    run(command)
    try:
        user = run(["docker", "exec", CONTAINER, "id", "-u"]).stdout.strip()
        if user != "10001":
            raise ImageTestError(f"the service runs as uid {user}, not the image's non-root 10001")
        wait_healthy(CONTAINER)
        check_answers(classify(port, NAMES))
        run(["docker", "stop", "--time", "30", CONTAINER])  # SIGTERM, then SIGKILL after 30 s
        state = json.loads(run(["docker", "inspect", "--format", "{{json .State}}", CONTAINER]).stdout)
        logs = run(["docker", "logs", CONTAINER], check=False)
        if state["ExitCode"] != 0 or "batcher drained" not in logs.stdout + logs.stderr:
            raise ImageTestError(
                f"SIGTERM: exit code {state['ExitCode']}, logs:\n{(logs.stdout + logs.stderr)[-2000:]}"
            )
    finally:
        run(["docker", "rm", "-f", CONTAINER], check=False)


def check_compose() -> str:
    """`docker compose config` (v2) or Debian's docker-compose (v1.29) on compose.yaml: it parses and resolves."""
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        command = ["docker", "compose"]
    else:
        if shutil.which("docker-compose") is None:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-compose"]), env=env)
        command = ["docker-compose"]
    version = run([*command, "version", "--short"], check=False).stdout.strip()
    compose_file, note = REPO_ROOT / "compose.yaml", ""
    with tempfile.TemporaryDirectory() as folder:
        if version.startswith("1."):  # Debian 12's docker-compose is v1.29: it predates one v2.20 key
            text = compose_file.read_text(encoding="utf-8")
            compose_file = Path(folder) / "compose.yaml"
            compose_file.write_text(
                "".join(line for line in text.splitlines(keepends=True) if not line.strip().startswith(V2_ONLY_KEYS))
            )
            note = f" (v1: {', '.join(key.rstrip(':') for key in V2_ONLY_KEYS)} stripped first)"
        run([*command, "-f", str(compose_file), "--project-directory", str(REPO_ROOT), "config", "--quiet"])
    return f"{' '.join(command)} {version}{note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy/image_test.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    started = time.monotonic()
    try:
        ensure_engine()
        base = ensure_base()
        build(base, stage_wheels())
        size = int(run(["docker", "image", "inspect", "--format", "{{.Size}}", IMAGE]).stdout.strip())
        run_container()
        compose = check_compose()
    except (ImageTestError, subprocess.TimeoutExpired, OSError) as error:
        print(f"image-test: FAILED: {error}", file=sys.stderr)
        return 1
    print(
        f"image-test: ok in {time.monotonic() - started:.0f} s: {IMAGE} from {base}, {size / 1e6:.0f} MB; healthy, "
        f"read-only, uid 10001, answers equal the in-process predictor's, clean SIGTERM exit; {compose} accepts compose.yaml"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
