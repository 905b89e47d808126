"""What a run did, counted chunk by chunk: rows, names classified, abstentions by reason, labels."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from batch.classify import ChunkAnswers
from batch.columns import LABEL, REASON


@dataclass
class Summary:
    rows: int = 0
    names_classified: int = 0  # names sent to the predictor: each distinct one once, while the cache has room
    chunks: int = 0
    resumed_chunks: int = 0  # finished by an earlier, interrupted run
    seconds: float = 0.0  # this run's time, start to finish
    reasons: Counter[str] = field(default_factory=Counter)  # abstained rows by reason
    labels: Counter[str] = field(default_factory=Counter)  # answered rows by label

    def add(self, answers: ChunkAnswers) -> None:
        """Count one chunk: rows per slot times each slot's label or reason (a slot is a distinct name)."""
        rows_per_slot = answers.rows_per_slot()
        labels = answers.slots.column(LABEL).to_pylist()
        reasons = answers.slots.column(REASON).to_pylist()
        for rows, label, reason in zip(rows_per_slot.tolist(), labels, reasons, strict=True):
            if not rows:
                continue
            if label is not None:
                self.labels[label] += rows
            else:
                self.reasons[reason] += rows
        self.rows += int(rows_per_slot.sum())
        self.names_classified += answers.names_classified
        self.chunks += 1

    @property
    def abstained(self) -> int:
        return sum(self.reasons.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "names_classified": self.names_classified,
            "chunks": self.chunks,
            "reasons": dict(self.reasons),
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Summary:
        return cls(
            rows=values.get("rows", 0),
            names_classified=values.get("names_classified", 0),
            chunks=values.get("chunks", 0),
            resumed_chunks=values.get("chunks", 0),
            reasons=Counter(values.get("reasons", {})),
            labels=Counter(values.get("labels", {})),
        )

    def lines(self, cache_names: int) -> list[str]:
        """The summary the command prints (to stderr: stdout may be the data)."""
        rate = f" ({self.rows / self.seconds:,.0f} rows/s)" if self.seconds > 0 else ""
        resumed = (
            f", {self.resumed_chunks} of {self.chunks} chunks from the interrupted run" if self.resumed_chunks else ""
        )
        lines = [
            f"rows: {self.rows:,} in {self.seconds:.1f} s{rate}{resumed}",
            f"distinct names classified: {self.names_classified:,} (each once while the cache holds under {cache_names:,})",
            f"abstained: {self.abstained:,}" + _counts(self.reasons),
            "labels:" + (_counts(self.labels) or " none"),
        ]
        return lines


def _counts(counter: Counter[str]) -> str:
    return "".join(f" {key} {count:,}," for key, count in counter.most_common()).rstrip(",")
