"""The streaming body scanner on its own: any chunking finds what one pass over the whole body finds, once;
a token at the end of a chunk waits for the next; gzip/deflate are decoded within their limits."""

from __future__ import annotations

import gzip
import random
import zlib

from baton_adapter.taint.stream import MAX_DECODED, MAX_ENCODED, BodyStream, content_decoder
from baton_adapter.taint.values import KINDS, canary_value, find, new_fingerprint


def scan(body: bytes, cuts: list[int], encoding: bytes | None = None) -> tuple[list[tuple[str, str, int, int]], BodyStream]:
    decoder = content_decoder(encoding)
    stream = BodyStream(decoder or None)
    if decoder is False:
        stream.skip()
    found = []
    edges = [0, *sorted(cuts), len(body)]
    for start, end in zip(edges, edges[1:]):
        found += stream.feed(body[start:end])
    found += stream.end()
    return [(t.family, t.fingerprint, t.start, t.end) for t in found], stream


def whole(body: bytes) -> list[tuple[str, str, int, int]]:
    return [(t.family, t.fingerprint, t.start, t.end) for t in find(body)]


def realistic_body(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 40)):
        if rng.random() < 0.3:
            kind = rng.choice(KINDS)
            parts.append(canary_value(kind, new_fingerprint(kind, rng.getrandbits)))
        else:
            parts.append(rng.choice(['{"id": 9123', '"n": 4000', "Canary ", "9", "  ", '", "x": "', "2024-01-01",
                                     "+1 555 0100", "abc" * rng.randint(1, 30)]))
    return " ".join(parts).encode()


def test_any_chunking_finds_what_one_pass_finds_exactly_once() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        body = realistic_body(rng)
        cuts = [rng.randint(0, len(body)) for _ in range(rng.randint(0, 8))]
        found, _ = scan(body, cuts)
        assert found == whole(body), (body, cuts)


def test_every_split_point_inside_a_canary() -> None:
    for kind in KINDS:
        value = canary_value(kind, new_fingerprint(kind)).encode()
        body = b'{"a": "' + value + b'", "b": 1}'
        for cut in range(len(body) + 1):
            found, _ = scan(body, [cut])
            assert found == whole(body) and len(found) == 1, (kind, cut)
        for cut in range(1, len(value)):  # a body that ends with the canary: decided only at its end
            found, _ = scan(value, [cut])
            assert len(found) == 1


def test_a_token_touching_a_chunk_end_waits_for_what_follows() -> None:
    stream = BodyStream()
    assert stream.feed(b"x canary-0a1b2c3d") == []  # an e next would make it no canary
    assert stream.feed(b"e y") == []
    assert stream.end() == []
    stream = BodyStream()
    assert stream.feed(b"x canary-0a1b2c3d") == []
    assert [t.fingerprint for t in stream.feed(b"@baton.test")] == ["0a1b2c3d"]


def test_gzip_and_deflate_bodies_are_decoded_in_any_chunking() -> None:
    rng = random.Random(11)
    for _ in range(200):
        body = realistic_body(rng)
        for encoding, packed in ((b"gzip", gzip.compress(body)), (b"deflate", zlib.compress(body)),
                                 (b"deflate", _raw_deflate(body)),
                                 (b"GZIP", gzip.compress(body))):
            cuts = [rng.randint(0, len(packed)) for _ in range(rng.randint(0, 5))]
            found, stream = scan(packed, cuts, encoding)
            assert [f[:2] for f in found] == [f[:2] for f in whole(body)]
            assert not stream.skipped and stream.scanned == len(body)


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


def test_decoding_stops_past_its_limits_and_on_corrupt_or_unknown_encodings() -> None:
    late = canary_value("email", "0a1b2c3d").encode()
    bomb = gzip.compress(b"0" * (MAX_DECODED + 1024) + late)  # small on the wire, over 8 MiB decoded
    assert len(bomb) < MAX_ENCODED
    found, stream = scan(bomb, [len(bomb) // 2], b"gzip")
    assert found == [] and stream.skipped and stream.scanned <= MAX_DECODED
    big = gzip.compress(random.Random(3).randbytes(MAX_ENCODED) + late)  # over 1 MiB on the wire
    found, stream = scan(big, list(range(0, len(big), 65536)), b"gzip")
    assert found == [] and stream.skipped
    found, stream = scan(b"not gzip at all " + late, [], b"gzip")
    assert found == [] and stream.skipped
    found, stream = scan(late, [], b"br")
    assert found == [] and stream.skipped
    found, stream = scan(late, [], b"identity")
    assert len(found) == 1 and not stream.skipped
