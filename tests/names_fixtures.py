"""Small name folders the tests write themselves: synthetic labels that a model can learn quickly."""

from __future__ import annotations

import random
from pathlib import Path

SUFFIXES = {"Ovish": "ov", "Skiish": "ski", "Ezish": "ez"}


def synthetic_names(per_label: int = 150, seed: int = 0) -> dict[str, list[str]]:
    """Distinct made-up names per label, told apart by their ending."""
    rng = random.Random(seed)
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    names: dict[str, list[str]] = {}
    seen: set[str] = set()
    for label, suffix in SUFFIXES.items():
        names[label] = []
        while len(names[label]) < per_label:
            stem = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(1, 3)))
            name = (stem + suffix).capitalize()
            if name.casefold() not in seen:
                seen.add(name.casefold())
                names[label].append(name)
    return names


def write_names_dir(folder: Path, names_by_label: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for label, names in names_by_label.items():
        (folder / f"{label}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return folder
