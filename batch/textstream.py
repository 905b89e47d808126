"""A text file's bytes handed to Arrow as UTF-8, checked on the way through.

Arrow's CSV reader reports bad UTF-8 without a position and its JSON reader replaces it silently;
checking here lets the error name the byte offset and line, and lets another --encoding be read.
"""

from __future__ import annotations

import codecs
import io
from typing import BinaryIO

from batch.errors import BatchInputError

READ_SIZE = 1 << 20
TAIL_BYTES = 64
UTF8_BOM = codecs.BOM_UTF8


class CheckedTextStream(io.RawIOBase):
    """Reads `raw` in `encoding` (strict) and yields UTF-8: passed through when it already is, transcoded
    otherwise. A byte that does not decode raises BatchInputError with its offset and line."""

    def __init__(self, raw: BinaryIO, source: str, encoding: str = "utf-8", close_raw: bool = True) -> None:
        super().__init__()
        try:
            codec = codecs.lookup(encoding)
        except LookupError as error:
            raise BatchInputError(f"unknown --encoding {encoding!r}") from error
        if not getattr(codec, "_is_text_encoding", True):  # rot13, zlib, base64: codecs, but not bytes to text
            raise BatchInputError(f"--encoding {encoding!r} is not a text encoding (give one such as latin-1)")
        self._raw = raw
        self._close_raw = close_raw  # never standard input's
        self._source = source
        self._encoding = codec.name
        self._passthrough = codec.name == "utf-8"
        self._decoder = codec.incrementaldecoder("strict")
        self._buffer = b""
        self._position = 0  # next byte of _buffer to hand out
        self._offset = 0  # input bytes read so far
        self._newlines = 0  # input newlines before _offset
        self._at_start = True
        self._eof = False
        self.tail = b""  # the last bytes handed on but trailing whitespace: how the file ends (CsvSource)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._close_raw and not self.closed:
            self._raw.close()
        super().close()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fills `buffer` whole unless the input ends first. pyarrow takes a short read for the whole
        block it asked for, so a read that returned only what one fill decoded made its blocks smaller
        and refused rows of 2 MiB as longer than the 4 MiB a row may hold (8 MiB for JSON Lines)."""
        filled = 0
        while filled < len(buffer):
            if self._position == len(self._buffer):
                if self._eof:
                    break
                self._fill()
                continue
            count = min(len(buffer) - filled, len(self._buffer) - self._position)
            buffer[filled : filled + count] = self._buffer[self._position : self._position + count]
            self._position += count
            filled += count
        return filled

    def peek_text(self, size: int) -> str:
        """Up to `size` bytes from the current position as text, without consuming them (for a header)."""
        while len(self._buffer) - self._position < size and not self._eof:
            self._buffer = self._buffer[self._position :] + self._next_block()
            self._position = 0
        return self._buffer[self._position : self._position + size].decode("utf-8", errors="ignore")

    def skip_blank_lines(self) -> None:
        """Consume the lines before the first text that hold only spaces, tabs and line breaks."""
        while True:
            text = self.peek_text(4096)
            stripped = text.lstrip(" \t\r\n")
            blank = text[: len(text) - len(stripped)]
            cut = max(blank.rfind("\n"), blank.rfind("\r"))  # the last line break of the blank run
            if cut < 0:
                return
            self._position += cut + 1  # ASCII: as many bytes as characters
            if stripped:
                return

    def _fill(self) -> None:
        self._buffer, self._position = self._next_block(), 0

    def _next_block(self) -> bytes:
        chunk = self._raw.read(READ_SIZE)
        if self._at_start:
            self._at_start = False
            if chunk.startswith(UTF8_BOM) and self._passthrough:
                chunk = chunk[len(UTF8_BOM) :]
                self._offset += len(UTF8_BOM)
        pending = len(self._decoder.getstate()[0])  # bytes of an unfinished character from the last block
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as error:
            raise self._decode_error(chunk, error.start - pending) from None
        self._offset += len(chunk)
        self._newlines += chunk.count(b"\n")
        if not chunk:
            self._eof = True
        out = chunk if self._passthrough else text.encode("utf-8")
        if out.strip():  # a block of blank lines at the end leaves the tail as the last text was
            self.tail = (self.tail + out).rstrip()[-TAIL_BYTES:]
        return out

    def _decode_error(self, chunk: bytes, start: int) -> BatchInputError:
        start = max(start, 0)
        offset = self._offset + start
        line = self._newlines + chunk[:start].count(b"\n") + 1
        byte = f" (0x{chunk[start]:02x})" if start < len(chunk) else " (the file ends inside a character)"
        return BatchInputError(
            f"{self._source}: not valid {self._encoding} at byte {offset}{byte}, line {line}; "
            "give the file's encoding with --encoding (e.g. --encoding latin-1)"
        )
