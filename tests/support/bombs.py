"""Crafted images: small files whose headers announce a huge bitmap (decompression bombs),
and tiny real images standing in for a camera's crops and photos."""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of `width` x `height` black pixels.

    Its rows compress to almost nothing, so 10,000 x 10,000 is about 12 KB on the wire
    and 300 MB once OpenCV decodes it to BGR.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed pixels
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def small_png(note: bytes = b"", *, size: int = 0) -> bytes:
    """A valid 8 x 4 PNG, with `note` and then zeros up to `size` bytes after its end.

    Decoders stop at IEND, so the tail only tells such images apart or makes them large.
    """
    return (png_bomb(8, 4) + note).ljust(size, b"\0")
