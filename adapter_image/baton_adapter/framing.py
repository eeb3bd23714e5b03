"""Length-prefixed frames in a byte stream: a 4-byte big-endian length, then that many bytes (``protobuf`` mode).

Pure: a ``FrameScanner`` follows one direction of one connection. Fed each chunk as it arrives, it says which
bytes may pass on now, where the frames that ended in them end, and whether a frame header declared more than
the limit. It never holds a frame: only a header split across reads (at most 3 bytes) waits for the rest, so
that no byte of an over-limit frame, not even its header, is passed on.
"""

from __future__ import annotations

__all__ = ["HEADER_BYTES", "MAX_FRAME_BYTES", "FrameScanner", "frame"]

MAX_FRAME_BYTES = 16 * 1024 * 1024  # the original Baton's limit on a frame's declared length
HEADER_BYTES = 4


def frame(payload: bytes) -> bytes:
    """``payload`` as one frame: its length as 4 big-endian bytes, then the payload."""
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


class FrameScanner:
    """Frame boundaries of one direction of a connection, fed chunk by chunk."""

    __slots__ = ("limit", "_held", "_remaining", "_size")

    def __init__(self, limit: int = MAX_FRAME_BYTES) -> None:
        self.limit = limit
        self._held = b""  # the start of a header split across reads (not passed on yet)
        self._remaining = 0  # body bytes of the current frame still to come
        self._size = 0  # the current frame's declared length

    @property
    def at_boundary(self) -> bool:
        """No frame is partly seen: the bytes passed on so far are whole frames."""
        return not self._remaining and not self._held

    def feed(self, data: bytes) -> tuple[bytes, list[tuple[int, int]], int]:
        """Scan the next chunk.

        Returns the bytes to pass on now; ``(end, length)`` of every frame that ended in them (``end``: the offset
        in those bytes just after the frame; ``length``: its payload's); and the length an over-limit header
        declared, or -1. The bytes to pass on then stop just before that header, and the scanner is spent: the
        caller closes the connection.
        """
        if self._held:
            data = self._held + data
            self._held = b""
        n = len(data)
        pos = 0
        ended: list[tuple[int, int]] = []
        remaining = self._remaining
        while True:
            if remaining:
                if n - pos < remaining:
                    self._remaining = remaining - (n - pos)
                    return data, ended, -1
                pos += remaining
                remaining = 0
                ended.append((pos, self._size))
            if pos == n:
                self._remaining = 0
                return data, ended, -1
            if n - pos < HEADER_BYTES:
                self._remaining = 0
                self._held = data[pos:]
                return data[:pos], ended, -1
            size = int.from_bytes(data[pos:pos + HEADER_BYTES], "big")
            if size > self.limit:
                self._remaining = 0
                return data[:pos], ended, size
            pos += HEADER_BYTES
            self._size = size
            if size == 0:
                ended.append((pos, 0))
            remaining = size
