"""The service's one settings object: defaults, NAMEORIGIN_* overrides, refusals, sole reader of the environment."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings
from model.assets import DEFAULT_CHECKPOINT_PATH

APP_DIR = Path(__file__).resolve().parents[1] / "app"


@pytest.fixture
def clean_env(monkeypatch):
    """No NAMEORIGIN_* variables from the machine running the tests."""
    for key in [key for key in os.environ if key.startswith("NAMEORIGIN_")]:
        monkeypatch.delenv(key)
    return monkeypatch


def test_settings_defaults(clean_env):
    settings = Settings()
    assert settings.checkpoint_path == DEFAULT_CHECKPOINT_PATH
    assert settings.device == "auto"
    assert settings.max_names_per_request == 1000
    assert settings.max_name_length == 64
    assert settings.max_body_bytes == 1_048_576
    assert settings.log_level == "INFO"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.max_batch_wait_ms == 1.0 and settings.queue_size == 1024 and settings.max_batch_size == 512


def test_settings_read_nameorigin_env_vars(clean_env, tmp_path):
    clean_env.setenv("NAMEORIGIN_CHECKPOINT", str(tmp_path / "other.safetensors"))
    clean_env.setenv("NAMEORIGIN_DEVICE", "cpu")
    clean_env.setenv("NAMEORIGIN_MAX_NAMES_PER_REQUEST", "7")
    clean_env.setenv("NAMEORIGIN_MAX_BATCH_WAIT_MS", "0")
    clean_env.setenv("NAMEORIGIN_LOG_LEVEL", "debug")
    clean_env.setenv("NAMEORIGIN_PORT", "9001")
    settings = Settings()
    assert settings.checkpoint_path == tmp_path / "other.safetensors"
    assert settings.device == "cpu"
    assert settings.max_names_per_request == 7
    assert settings.max_batch_wait_ms == 0
    assert settings.log_level == "DEBUG"
    assert settings.port == 9001


def test_settings_ignore_unprefixed_env_vars(clean_env):
    clean_env.setenv("CHECKPOINT_PATH", "/elsewhere.safetensors")
    clean_env.setenv("DEVICE", "cuda")
    assert Settings().checkpoint_path == DEFAULT_CHECKPOINT_PATH
    assert Settings().device == "auto"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NAMEORIGIN_DEVICE", "tpu"),
        ("NAMEORIGIN_MAX_NAMES_PER_REQUEST", "0"),
        ("NAMEORIGIN_MAX_BATCH_WAIT_MS", "-1"),
        ("NAMEORIGIN_QUEUE_SIZE", "many"),
        ("NAMEORIGIN_LOG_LEVEL", "LOUD"),
    ],
)
def test_settings_refuse_invalid_values(clean_env, variable, value):
    clean_env.setenv(variable, value)
    with pytest.raises(ValidationError):
        Settings()


def test_settings_refuse_unknown_keyword():
    with pytest.raises(ValidationError, match="max_name"):
        Settings(max_name=3)


def test_settings_accept_field_names_in_code(tmp_path):
    settings = Settings(checkpoint_path=tmp_path / "x.safetensors", max_body_bytes=10)
    assert settings.checkpoint_path == tmp_path / "x.safetensors" and settings.max_body_bytes == 10


def test_settings_limits_appear_in_the_api_description(clean_env):
    app = create_app(Settings(max_names_per_request=17, max_name_length=33, max_body_bytes=4096))
    assert "17 names per request, 33 characters" in app.description and "4096 bytes" in app.description


def test_settings_class_is_the_only_code_in_app_reading_the_environment():
    """No reads outside Settings; the only writes are `python -m app` handing its workers the metrics
    folder, their count and the kept model's copy (and taking the copy back when they stop)."""
    readers = []
    for path in sorted(APP_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        writes = {
            id(target.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Subscript)
        }
        removals = {  # os.environ.pop(...): the same process taking back what it handed its workers
            id(node.func.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "pop"
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}:
                if (id(node) in writes or id(node) in removals) and path.name == "__main__.py":
                    continue
                readers.append(f"{path.name}:{node.lineno}")
    assert readers == []
