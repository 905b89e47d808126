"""Where the shipped checkpoint lives; importing this module loads no torch (probes and settings use it)."""

from pathlib import Path

DEFAULT_CHECKPOINT_PATH = Path(__file__).resolve().parent / "default.safetensors"
