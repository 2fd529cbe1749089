"""The byte format of one compressed sample: a small self-describing header, the payload, a checksum.

Layout (all integers little-endian)::

    magic      3 bytes   b"WLC"
    version    1 byte    1, or 2 (FORMAT_VERSION) for a stored sample
    layout     1 byte    bits per latent code (bits 0-4), rank of the latent array - 1 (bits 5-6),
                         stored flag (bit 7)
    shape      rank unsigned LEB128 varints: channels, then the grid
    model      2 bytes   the first bytes of the entropy model's fingerprint
    payload    ...       range-coded codes; with the stored flag, the codes' offsets from the lowest
                         code as ``bits``-bit fields, least significant bit first (:func:`pack_codes`)
    crc        4 bytes   CRC-32 of the model's full 8-byte fingerprint followed by everything above

A blob is decoded exactly or refused: the CRC catches truncation, bit flips and splices, the
model bytes name a blob handed to another model (and the CRC, seeded with the whole
fingerprint, refuses the rare one whose two bytes agree), and the version a blob from a newer
format. The header takes 11 bytes plus the shape (usually 3 bytes): small samples stay small.

A sample the entropy model codes in more bytes than its fixed-length codes (data unlike what the
model was fitted on) is stored instead, so a blob's payload never exceeds the fixed-length size.
Version 1 has no stored flag (rank - 1 fills bits 5-7; the payload is always range-coded). A blob is
written at the lowest version that holds it, so a range-coded one is version 1 and releases from before
the flag read it; they refuse a stored one by its version.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

__all__ = ["BlobError", "pack_blob", "unpack_blob", "pack_codes", "unpack_codes", "stored_size", "FORMAT_VERSION",
           "MAGIC"]

MAGIC = b"WLC"
FORMAT_VERSION = 2
#: Versions this walloc-features reads (1: no stored flag, rank - 1 in the layout byte's high 3 bits).
READABLE_VERSIONS = (1, 2)
#: Highest latent rank a blob frames (the layout byte's 2 rank bits).
MAX_RANK = 4
_STORED = 0x80
#: Largest number of codes a blob may declare or frame: a decompression-bomb limit, as Pillow's
#: ``MAX_IMAGE_PIXELS``. Decoding allocates about 40 bytes a declared code, and a forged 16-byte blob is
#: enough to declare them (2**28 made ``decompress`` ask for 4 GB); 2**26 codes is the 12-channel latent
#: grid of a 19,000 x 19,000 RGB image at 16x, or an hour of stereo 44.1 kHz audio at 20x several times over.
MAX_CODES = 1 << 26
_FIXED = struct.Struct("<3sBB")
_CRC = struct.Struct("<I")
_FINGERPRINT_BYTES = 2
_PACK_CHUNK = 1 << 16  # codes bit-packed at a time (a multiple of 8)


class BlobError(ValueError):
    """A blob that is not a valid compressed sample for this model (the message says why)."""


def pack_blob(shape: tuple, bits: int, fingerprint: bytes, payload: bytes, *, stored: bool = False) -> bytes:
    """Frame ``payload`` with the header and checksum described in the module docstring.

    ``stored=True`` marks a payload of :func:`pack_codes` instead of range-coded bytes.
    """
    if not 1 <= int(bits) <= 31 or not 1 <= len(shape) <= MAX_RANK:
        raise ValueError(f"cannot frame {bits}-bit codes of rank {len(shape)}")
    if math.prod(shape) > MAX_CODES:  # decompress would refuse it: refused here, before anything is lost
        raise ValueError(
            f"a sample of {math.prod(shape)} codes {tuple(shape)} is more than one blob holds ({MAX_CODES}); "
            "compress smaller samples (tiles, or shorter clips)"
        )
    layout = int(bits) | (len(shape) - 1) << 5 | (_STORED if stored else 0)
    version = FORMAT_VERSION if stored else 1  # the lowest version that holds it (see the module docstring)
    head = _FIXED.pack(MAGIC, version, layout) + b"".join(_varint(int(s)) for s in shape)
    body = head + fingerprint[:_FINGERPRINT_BYTES] + payload
    return body + _CRC.pack(zlib.crc32(body, zlib.crc32(fingerprint)))


def unpack_blob(blob, *, fingerprint: bytes, bits: int, rank: int) -> tuple[tuple, bytes, bool]:
    """Check a blob against the model that should read it; return ``(shape, payload, stored)``.

    ``stored`` is True for a payload of :func:`pack_codes`, False for range-coded bytes.

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
    if version not in READABLE_VERSIONS:
        raise BlobError(
            f"blob has format version {version}; this walloc-features reads versions {READABLE_VERSIONS}"
        )
    stored = version >= 2 and bool(layout & _STORED)
    blob_bits, blob_rank = layout & 0x1F, ((layout & ~_STORED if version >= 2 else layout) >> 5) + 1
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
    return shape, blob[offset + _FINGERPRINT_BYTES : -_CRC.size], stored


def stored_size(count: int, bits: int) -> int:
    """Bytes :func:`pack_codes` takes for ``count`` codes of ``bits`` bits."""
    return -(-int(count) * int(bits) // 8)


def pack_codes(offsets, bits: int) -> bytes:
    """Fixed-length payload: non-negative ``offsets`` (below ``2**bits``) as ``bits``-bit fields, LSB first."""
    offsets = np.asarray(offsets).reshape(-1)
    if offsets.size and (offsets.min() < 0 or offsets.max() >> bits):
        raise ValueError(f"offsets must lie in [0, 2**{bits}) to be stored in {bits} bits")
    if bits in (8, 16):  # whole bytes: the little-endian integers themselves
        return offsets.astype(f"<u{bits // 8}").tobytes()
    out = bytearray()
    for start in range(0, offsets.size, _PACK_CHUNK):  # bounds the (n, bits) bit matrix
        part = offsets[start : start + _PACK_CHUNK].astype(np.uint32)
        planes = (part[:, None] >> np.arange(bits, dtype=np.uint32)) & 1
        out += np.packbits(planes.astype(np.uint8).reshape(-1), bitorder="little").tobytes()
    return bytes(out)


def unpack_codes(payload: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``count`` offsets (int64); a :class:`BlobError` if the size is wrong."""
    expected = stored_size(count, bits)
    if len(payload) != expected:
        raise BlobError(f"stored payload of {len(payload)} bytes; {count} codes of {bits} bits take {expected}")
    if bits in (8, 16):
        return np.frombuffer(payload, dtype=f"<u{bits // 8}").astype(np.int64)
    data = np.frombuffer(payload, dtype=np.uint8)
    weights = np.int64(1) << np.arange(bits, dtype=np.int64)
    out = np.empty(count, dtype=np.int64)
    step = _PACK_CHUNK * bits // 8  # _PACK_CHUNK is a multiple of 8, so chunks start on byte boundaries
    for i, start in enumerate(range(0, count, _PACK_CHUNK)):
        n = min(_PACK_CHUNK, count - start)
        planes = np.unpackbits(data[i * step : i * step + -(-n * bits // 8)], bitorder="little", count=n * bits)
        out[start : start + n] = planes.reshape(n, bits).astype(np.int64) @ weights
    return out


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
