"""The byte format of one compressed sample: a small self-describing header, the payload, a checksum.

Layout (all integers little-endian)::

    magic      3 bytes   b"WLC"
    version    1 byte    FORMAT_VERSION
    layout     1 byte    bits per latent code (low 5 bits), rank of the latent array - 1 (high 3)
    shape      rank unsigned LEB128 varints: channels, then the grid
    model      2 bytes   the first bytes of the entropy model's fingerprint
    payload    ...       range-coded codes
    crc        4 bytes   CRC-32 of the model's full 8-byte fingerprint followed by everything above

A blob is decoded exactly or refused: the CRC catches truncation, bit flips and splices, the
model bytes name a blob handed to another model (and the CRC, seeded with the whole
fingerprint, refuses the rare one whose two bytes agree), and the version a blob from a newer
format. The header takes 11 bytes plus the shape (usually 3 bytes): small samples stay small.
"""

from __future__ import annotations

import math
import struct
import zlib

__all__ = ["BlobError", "pack_blob", "unpack_blob", "FORMAT_VERSION", "MAGIC"]

MAGIC = b"WLC"
FORMAT_VERSION = 1
#: Largest number of codes a blob may declare or frame: a decompression-bomb limit, as Pillow's
#: ``MAX_IMAGE_PIXELS``. Decoding allocates about 40 bytes a declared code, and a forged 16-byte blob is
#: enough to declare them (2**28 made ``decompress`` ask for 4 GB); 2**26 codes is the 12-channel latent
#: grid of a 19,000 x 19,000 RGB image at 16x, or an hour of stereo 44.1 kHz audio at 20x several times over.
MAX_CODES = 1 << 26
_FIXED = struct.Struct("<3sBB")
_CRC = struct.Struct("<I")
_FINGERPRINT_BYTES = 2


class BlobError(ValueError):
    """A blob that is not a valid compressed sample for this model (the message says why)."""


def pack_blob(shape: tuple, bits: int, fingerprint: bytes, payload: bytes) -> bytes:
    """Frame ``payload`` with the header and checksum described in the module docstring."""
    if not 1 <= int(bits) <= 31 or not 1 <= len(shape) <= 8:
        raise ValueError(f"cannot frame {bits}-bit codes of rank {len(shape)}")
    if math.prod(shape) > MAX_CODES:  # decompress would refuse it: refused here, before anything is lost
        raise ValueError(
            f"a sample of {math.prod(shape)} codes {tuple(shape)} is more than one blob holds ({MAX_CODES}); "
            "compress smaller samples (tiles, or shorter clips)"
        )
    layout = int(bits) | (len(shape) - 1) << 5
    head = _FIXED.pack(MAGIC, FORMAT_VERSION, layout) + b"".join(_varint(int(s)) for s in shape)
    body = head + fingerprint[:_FINGERPRINT_BYTES] + payload
    return body + _CRC.pack(zlib.crc32(body, zlib.crc32(fingerprint)))


def unpack_blob(blob, *, fingerprint: bytes, bits: int, rank: int) -> tuple[tuple, bytes]:
    """Check a blob against the model that should read it; return ``(shape, payload)``.

    Raises
    ------
    TypeError
        ``blob`` is not bytes-like.
    BlobError
        Anything else is wrong; the message names what (truncated, not a blob, newer format,
        corrupted, another model's, wrong shape).
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"a compressed sample must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    minimum = _FIXED.size + rank + _FINGERPRINT_BYTES + _CRC.size
    if len(blob) < minimum:
        raise BlobError(f"blob of {len(blob)} bytes is truncated: even an empty one has {minimum}")
    magic, version, layout = _FIXED.unpack_from(blob)
    if magic != MAGIC:
        raise BlobError(f"not a walloc-features blob: starts with {blob[:3]!r}, expected {MAGIC!r}")
    stored_crc = _CRC.unpack_from(blob, len(blob) - _CRC.size)[0]
    if zlib.crc32(blob[: -_CRC.size], zlib.crc32(fingerprint)) != stored_crc:
        raise BlobError(_why_unverified(blob, version, rank, fingerprint))
    if version != FORMAT_VERSION:
        raise BlobError(f"blob has format version {version}; this walloc-features reads version {FORMAT_VERSION}")
    blob_bits, blob_rank = layout & 0x1F, (layout >> 5) + 1
    if blob_bits != bits or blob_rank != rank:
        raise BlobError(
            f"blob holds {blob_bits}-bit codes of rank {blob_rank}; this model reads {bits}-bit codes of rank {rank}"
        )
    shape, offset = _read_shape(blob, rank)
    count = 1
    for s in shape:
        count *= s
    if min(shape) < 1:
        raise BlobError(f"blob declares an invalid latent shape {shape}")
    if count > MAX_CODES:  # (written before the limit fell from 2**28: raise MAX_CODES to read a blob you trust)
        raise BlobError(
            f"blob declares {count} codes {shape}, more than walloc_features.codecs.blob.MAX_CODES = {MAX_CODES} "
            "(a decompression-bomb limit); raise it to read a blob from a source you trust"
        )
    return shape, blob[offset + _FINGERPRINT_BYTES : -_CRC.size]


def _why_unverified(blob: bytes, version: int, rank: int, fingerprint: bytes) -> str:
    """The likeliest reason a blob fails its checksum, for the error message."""
    if version > FORMAT_VERSION:
        return (
            f"blob has format version {version}, newer than this walloc-features reads ({FORMAT_VERSION}), "
            "or is corrupted"
        )
    try:
        _, offset = _read_shape(blob, rank)
    except BlobError:
        offset = None
    stored = blob[offset : offset + _FINGERPRINT_BYTES] if offset is not None else b""
    if len(stored) == _FINGERPRINT_BYTES and stored != fingerprint[:_FINGERPRINT_BYTES]:
        return (
            f"blob was written by another entropy model (model bytes {stored.hex()}, this transformer's "
            f"{fingerprint[:_FINGERPRINT_BYTES].hex()}) or is corrupted: decode it with the transformer that wrote it"
        )
    return "blob checksum mismatch: the bytes are corrupted or truncated"


def _read_shape(blob: bytes, rank: int) -> tuple[tuple, int]:
    """The header's shape varints and the offset just past them."""
    offset, shape = _FIXED.size, []
    for _ in range(rank):
        value, offset = _read_varint(blob, offset, len(blob) - _CRC.size)
        shape.append(value)
    return tuple(shape), offset


def _varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, high bit set on all but the last."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(blob: bytes, offset: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= end or shift > 35:
            raise BlobError("blob header is truncated or malformed (bad shape field)")
        byte = blob[offset]
        value |= (byte & 0x7F) << shift
        offset, shift = offset + 1, shift + 7
        if not byte & 0x80:
            return value, offset
