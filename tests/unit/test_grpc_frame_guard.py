"""The HTTP/2 frame-length guard of grpc nodes: headers read across any split, the preface skipped, a frame
declared longer than the limit refused before its payload arrives."""

from __future__ import annotations

from baton_adapter.grpc_call import FrameGuard

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _frame(length: int, payload: bytes | None = None) -> bytes:
    return length.to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01" + (b"p" * length if payload is None else payload)


def test_frames_within_the_limit_pass_whatever_the_split() -> None:
    stream = PREFACE + _frame(0) + _frame(16384) + _frame(5) + _frame(16384)
    for size in (1, 2, 7, 9, 10, 1000, len(stream)):
        guard = FrameGuard(16384)
        assert all(guard.feed(stream[i:i + size]) for i in range(0, len(stream), size)), size
        assert (guard.need, guard.head, guard.preface) == (0, b"", 0)


def test_a_longer_frame_is_refused_at_its_header() -> None:
    guard = FrameGuard(16384)
    assert guard.feed(PREFACE + _frame(10))
    head = _frame(16385, b"")
    assert guard.feed(head[:4])  # the header split: not yet known
    assert not guard.feed(head[4:])  # refused with no byte of its payload read
    assert not FrameGuard(16384).feed(PREFACE + (0xFFFFFF).to_bytes(3, "big") + b"\xff" * 6)
