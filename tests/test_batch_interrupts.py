"""Stop signals held back while a temporary output file is created or removed (batch.interrupts)."""

from __future__ import annotations

import signal
import tempfile

import pytest

from batch import enrich as enrich_module
from batch.interrupts import interrupts_held, raise_interrupt


def test_a_signal_outside_a_held_block_interrupts_at_once():
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        raise_interrupt(signal.SIGTERM, None)


def test_a_signal_inside_a_held_block_interrupts_when_the_block_ends():
    finished = []
    with pytest.raises(KeyboardInterrupt, match="signal 1"), interrupts_held():
        with interrupts_held():  # nested: only the outermost block's end raises
            raise_interrupt(signal.SIGHUP, None)
            finished.append("inner")
        finished.append("outer")
    assert finished == ["inner", "outer"]
    with interrupts_held():  # the pending signal was raised once and is gone
        pass


def test_a_stop_right_after_the_temporary_output_exists_leaves_no_file(tmp_path, monkeypatch):
    """The race a SIGTERM test once lost: the signal came as mkstemp returned, before the cleanup was armed."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_signal(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        raise_interrupt(signal.SIGTERM, None)  # what the handler does when SIGTERM lands here
        return made

    monkeypatch.setattr(enrich_module.tempfile, "mkstemp", mkstemp_then_signal)
    with pytest.raises(KeyboardInterrupt), enrich_module._replacing(tmp_path / "out.csv") as file:
        file.write(b"never")
    assert list(tmp_path.iterdir()) == []
