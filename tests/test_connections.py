"""One write per answer (`app.connections.HeadWithBody`): the head waits for the body's first bytes,
and nothing is held past its response. Real-server checks of the same (HEAD, 100-continue,
pipelining) are in tests/test_hostile.py."""

from __future__ import annotations

import asyncio

from app.connections import CONTINUE_LINE, HeadWithBody

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """Records each call that would reach the socket, one entry per send."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise RuntimeError("unable to perform operation: the handler is closed")  # as uvloop refuses
        self.sends.append(bytes(data))

    def writelines(self, list_of_data) -> None:  # uvloop sends these in one writev
        self.sends.append(b"".join(list_of_data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_head_and_body_leave_in_one_send_and_later_chunks_follow_as_they_come():
    socket = RecordingTransport()
    transport = HeadWithBody(socket)
    transport.write(HEAD)
    assert socket.sends == []
    transport.write(b"{}")
    assert socket.sends == [HEAD + b"{}"]
    transport.write(b"more")  # a streamed body's next chunk is not held
    assert socket.sends == [HEAD + b"{}", b"more"]


def test_the_interim_100_continue_is_not_held_and_the_head_after_it_is():
    socket = RecordingTransport()
    transport = HeadWithBody(socket)
    transport.write(CONTINUE_LINE)
    assert socket.sends == [CONTINUE_LINE]
    transport.write(HEAD)
    transport.write(b"ok")
    assert socket.sends == [CONTINUE_LINE, HEAD + b"ok"]


def test_a_head_with_no_body_write_leaves_on_flush_or_close_and_only_once():
    socket = RecordingTransport()
    transport = HeadWithBody(socket)
    transport.write(HEAD)  # HEAD request: uvicorn writes no body
    transport.flush()
    transport.flush()
    assert socket.sends == [HEAD]
    closing = RecordingTransport()
    transport = HeadWithBody(closing)
    transport.write(HEAD)  # an error after the head: uvicorn closes the connection
    transport.close()
    assert closing.sends == [HEAD] and closing.closed and transport.is_closing()


def test_a_head_held_when_the_connection_is_gone_is_dropped_not_written():
    socket = RecordingTransport()
    transport = HeadWithBody(socket)
    transport.write(HEAD)
    socket.close()  # the client went away; uvicorn then closes (or finishes) the response
    transport.close()
    transport.flush()
    assert socket.sends == []
