"""A body scanned for canary-shaped tokens while it streams, chunk by chunk, in bounded memory.

Each chunk is searched together with a *carry*, the last ``CARRY`` bytes before it, so a token split across
two chunks is found. Positions are counted from the start of the body: a token is reported once, only when no
earlier report overlaps it, and a token touching the end of what has arrived waits for the next chunk (the
bytes after it decide whether it is a token at all: ``canary-0a1b2c3d`` followed by ``e`` is not one).

A body with ``Content-Encoding: gzip`` (or ``deflate``) is decoded for scanning only, incrementally, while
at most ``MAX_ENCODED`` bytes arrived and ``MAX_DECODED`` came out; past that, or for an encoding the
standard library cannot decode, scanning of that body stops and ``skipped`` says so.
"""

from __future__ import annotations

import zlib

from .values import MAX_TOKEN_BYTES, Found, find

__all__ = ["CARRY", "MAX_DECODED", "MAX_ENCODED", "BodyStream", "content_decoder"]

CARRY = 2 * MAX_TOKEN_BYTES  # twice the longest token: the bytes a token's look-behind needs stay in view
MAX_ENCODED = 1024 * 1024
MAX_DECODED = 8 * 1024 * 1024
_PIECE = 64 * 1024  # decoded bytes produced per step (bounds the memory a compression bomb can claim)
_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW = -zlib.MAX_WBITS


class _Decoder:
    """Incremental gzip/deflate decoding within the size limits; ``failed`` once it gave up."""

    __slots__ = ("wbits", "inflater", "head", "encoded", "decoded", "failed")

    def __init__(self, wbits: int) -> None:
        self.wbits = wbits
        # "deflate" is zlib-wrapped by the RFC, but some servers send raw deflate: the first two bytes tell
        self.inflater = None if wbits == _ZLIB else zlib.decompressobj(wbits)
        self.head = b""
        self.encoded = 0
        self.decoded = 0
        self.failed = False

    def feed(self, data: bytes) -> list[bytes]:
        """The decoded pieces of ``data`` (empty once over a limit or on corrupt input: ``failed`` is set)."""
        self.encoded += len(data)
        if self.encoded > MAX_ENCODED:
            self.failed = True
            return []
        inflater = self.inflater
        if inflater is None:
            data = self.head + data
            if len(data) < 2:
                self.head = data
                return []
            self.head = b""
            zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            inflater = self.inflater = zlib.decompressobj(_ZLIB if zlib_header else _RAW)
        pieces: list[bytes] = []
        try:
            piece = inflater.decompress(data, _PIECE)
            while True:
                if piece:
                    self.decoded += len(piece)
                    if self.decoded > MAX_DECODED:
                        self.failed = True
                        return pieces
                    pieces.append(piece)
                tail = inflater.unconsumed_tail
                if not tail:
                    return pieces
                piece = inflater.decompress(tail, _PIECE)
        except zlib.error:
            self.failed = True
            return pieces


_ENCODINGS = {b"gzip": _GZIP, b"x-gzip": _GZIP, b"deflate": _ZLIB}


def content_decoder(encoding: bytes | None) -> _Decoder | None | bool:
    """A decoder for a Content-Encoding value: None for identity, False when it cannot be decoded here."""
    if encoding is None:
        return None
    value = encoding.strip().lower()
    if not value or value == b"identity":
        return None
    wbits = _ENCODINGS.get(value)
    return False if wbits is None else _Decoder(wbits)


class BodyStream:
    """One body direction of one exchange: feed it chunks, then ``end()``; each returns the new tokens."""

    __slots__ = ("carry", "offset", "done_until", "deferred", "decoder", "skipped", "scanned")

    def __init__(self, decoder: _Decoder | None = None) -> None:
        self.carry = b""
        self.offset = 0  # body bytes (decoded) scanned so far
        self.done_until = 0  # the end of the last reported token
        self.deferred = False  # a token touched the end of the last chunk: decided by what follows
        self.decoder = decoder
        self.skipped = False  # scanning stopped early (limits, corrupt or unknown encoding)
        self.scanned = 0

    def feed(self, data: bytes) -> list[Found]:
        if self.skipped:
            return []
        decoder = self.decoder
        if decoder is None:
            return self._scan(data, False)
        found: list[Found] = []
        for piece in decoder.feed(data):
            found += self._scan(piece, False)
        if decoder.failed:
            self.skipped = True
        return found

    def end(self) -> list[Found]:
        """The body is complete: a token that waited at its end is decided now."""
        if not self.deferred or self.skipped:
            return []
        return self._scan(b"", True)

    def skip(self) -> None:
        """Stop scanning this body (its encoding cannot be decoded here)."""
        self.skipped = True

    def _scan(self, data: bytes, final: bool) -> list[Found]:
        carry = self.carry
        buf = carry + data if carry else data
        size = len(buf)
        base = self.offset - len(carry)  # body position of buf[0]
        previous_end = self.offset  # tokens ending before it were decided by an earlier scan
        self.offset += len(data)
        self.scanned += len(data)
        self.carry = buf[-CARRY:] if size > CARRY else buf
        self.deferred = False
        if not buf:
            return []
        found = []
        for token in find(buf):
            end = base + token.end
            if end < previous_end:
                continue
            if token.end == size and not final:
                self.deferred = True
                break
            start = base + token.start
            if start < self.done_until:
                continue
            self.done_until = end
            found.append(token if not base else Found(token.family, token.fingerprint, start, end))
        return found
