"""An encoded frame's size in pixels, read from its header before anything decodes it.

OpenCV's ``imdecode`` is not lazy: it allocates the whole bitmap the header announces, so
a few kilobytes of PNG can ask for gigabytes (a decompression bomb). The node takes only
the formats cameras send, JPEG and PNG, reads their headers here (no image library: the
node without the ``capture`` extra checks frames too) and refuses a frame past
`MAX_FRAME_PIXELS` before it reaches a decoder.

PNG: the first chunk is IHDR, whose width and height are what the decoder allocates.
JPEG: segments are walked from SOI to the first start-of-frame (SOF0-SOF15 but DHT,
JPG and DAC), whose height and width are what libjpeg allocates; a height of 0 (defined
later by a DNL segment) is refused, as is a scan or the end before any frame.
"""

from __future__ import annotations

import struct

from node.errors import ValidationError

# 24 megapixels (6000 x 4000): past any plate camera's sensor, and 72 MB once decoded.
MAX_FRAME_PIXELS = 24_000_000
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8"
# Start-of-frame markers: 0xC0-0xCF, less DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, with no length: TEM and RST0-RST7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_SOS, _EOI = 0xDA, 0xD9


def frame_size(data: bytes) -> tuple[int, int] | None:
    """The width and height a JPEG or PNG header announces; None if `data` is neither."""
    if data.startswith(_PNG):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return (width, height) if width and height else None
    if data.startswith(_JPEG):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = len(_JPEG)
    while at + 1 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        at += 2
        if marker == 0xFF:  # a fill byte before the marker
            at -= 1
            continue
        if marker in _STANDALONE:
            continue
        if marker in {_SOS, _EOI} or at + 2 > len(data):
            return None
        (length,) = struct.unpack(">H", data[at : at + 2])
        if marker in _SOF:
            if length < 7 or at + 7 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 3 : at + 7])
            return (width, height) if width and height else None
        at += length
    return None


def check_frame_size(data: bytes, name: str) -> None:
    """Check that `data` is a JPEG or PNG of at most `MAX_FRAME_PIXELS`, without decoding it.

    Raises:
        ValidationError: It is neither, its header is truncated, or it is too large; names
            `name`.
    """
    size = frame_size(data)
    if size is None:
        raise ValidationError(name, "is not a JPEG or PNG image (its header cannot be read)")
    width, height = size
    if width * height > MAX_FRAME_PIXELS:
        raise ValidationError(
            name,
            f"is {width} x {height} pixels; the node decodes at most {MAX_FRAME_PIXELS} pixels"
            " a frame",
        )
