"""The length-prefixed frame scanner of the protobuf mode: boundaries across any split of the stream, the limit."""

from __future__ import annotations

import random

from baton_adapter.framing import MAX_FRAME_BYTES, FrameScanner, frame


def _scan_all(stream: bytes, cuts: list[int], limit: int = MAX_FRAME_BYTES) -> tuple[bytes, list[int], int]:
    scanner = FrameScanner(limit)
    passed, lengths, declared = b"", [], -1
    bounds = [0, *cuts, len(stream)]
    for a, b in zip(bounds, bounds[1:]):
        out, ended, declared = scanner.feed(stream[a:b])
        for end, length in ended:
            assert 0 < end <= len(out)
            lengths.append(length)
        passed += out
        if declared >= 0:
            break
    return passed, lengths, declared


def test_frames_split_anywhere_pass_whole_with_their_lengths() -> None:
    payloads = [b"", b"a", b"hello", bytes(300), b"\x00\x00\x00\x05", b"x" * 70_000]
    stream = b"".join(frame(p) for p in payloads)
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(0, 12)))
        passed, lengths, declared = _scan_all(stream, cuts)
        assert (passed, lengths, declared) == (stream, [len(p) for p in payloads], -1)


def test_byte_by_byte() -> None:
    stream = frame(b"abc") + frame(b"") + frame(b"defg")
    passed, lengths, _ = _scan_all(stream, list(range(1, len(stream))))
    assert passed == stream and lengths == [3, 0, 4]


def test_boundary_state() -> None:
    scanner = FrameScanner()
    assert scanner.at_boundary
    out, ended, _ = scanner.feed(b"\x00\x00")
    assert out == b"" and ended == [] and not scanner.at_boundary  # half a header waits, unsent
    out, ended, _ = scanner.feed(b"\x00\x02a")
    assert out == b"\x00\x00\x00\x02a" and ended == [] and not scanner.at_boundary
    out, ended, _ = scanner.feed(b"b")
    assert out == b"b" and ended == [(1, 2)] and scanner.at_boundary


def test_an_over_limit_header_stops_before_it_even_split() -> None:
    good = frame(b"ok") + frame(b"fine")
    big = (MAX_FRAME_BYTES + 1).to_bytes(4, "big")
    for cut in range(len(good) + 1, len(good) + 4):  # the header split across two reads
        passed, lengths, declared = _scan_all(good + big + b"payload", [cut])
        assert (passed, lengths, declared) == (good, [2, 4], MAX_FRAME_BYTES + 1)
    exactly = MAX_FRAME_BYTES.to_bytes(4, "big")
    out, _, declared = FrameScanner().feed(exactly + b"x")
    assert declared == -1 and out == exactly + b"x"  # the limit itself is allowed


def test_a_configured_limit() -> None:
    passed, lengths, declared = _scan_all(frame(b"12345") + frame(b"123456"), [], limit=5)
    assert (passed, lengths, declared) == (frame(b"12345"), [5], 6)
