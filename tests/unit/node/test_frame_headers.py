"""A frame's size in pixels read from its JPEG or PNG header, before anything decodes it.

A decompression bomb (a small PNG announcing a huge bitmap) is refused by its header;
the sizes read agree with what OpenCV decodes; malformed headers are named refusals.
"""

from __future__ import annotations

import struct

import pytest

from node.capture.frames import check_frames
from node.capture.headers import MAX_FRAME_PIXELS, check_frame_size, frame_size
from node.errors import ValidationError
from tests.support.bombs import png_bomb

SOI, EOI = b"\xff\xd8", b"\xff\xd9"


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def sof(height: int, width: int, marker: int = 0xC0) -> bytes:
    return segment(marker, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")


APP0 = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
NOT_FRAMES = {
    "empty": b"",
    "text": b"not an image at all",
    "gif": b"GIF89a\x01\x00\x01\x00",
    "bmp": b"BM" + b"\x00" * 60,
    "png truncated in IHDR": png_bomb(10, 10)[:20],
    "png without IHDR first": b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 0) + b"IEND" + b"\0" * 8,
    "png of zero width": png_bomb(10, 10)[:16] + struct.pack(">II", 0, 10),
    "jpeg with only SOI": SOI,
    "jpeg scan before any frame": SOI + APP0 + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
    "jpeg ending before any frame": SOI + APP0 + EOI,
    "jpeg height from a DNL (0)": SOI + APP0 + sof(0, 640),
    "jpeg segment truncated": SOI + APP0[:5],
    "jpeg SOF truncated": SOI + sof(480, 640)[:6],
    "jpeg junk between segments": SOI + b"\x00\x00" + sof(480, 640),
}


class TestFrameSize:
    def test_succeeds_for_jpeg_headers_of_every_frame_kind(self) -> None:
        for marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCF):  # baseline, progressive...
            assert frame_size(SOI + APP0 + sof(480, 640, marker)) == (640, 480)
        # DHT (0xC4) is not a frame; fill bytes and RST markers are stepped over.
        data = SOI + segment(0xC4, b"\x00" * 17) + b"\xff\xff\xd0" + sof(1080, 1920) + EOI
        assert frame_size(data) == (1920, 1080)

    def test_succeeds_for_a_png(self) -> None:
        assert frame_size(png_bomb(640, 480)) == (640, 480)

    @pytest.mark.parametrize("data", NOT_FRAMES.values(), ids=NOT_FRAMES.keys())
    def test_fails_for_what_is_not_a_readable_jpeg_or_png_header(self, data: bytes) -> None:
        assert frame_size(data) is None
        with pytest.raises(ValidationError, match="is not a JPEG or PNG image") as raised:
            check_frame_size(data, "frames[0].image")
        assert raised.value.metadata()["field"] == "frames[0].image"

    @pytest.mark.parametrize(("width", "height"), [(640, 480), (4000, 3000), (1, 1), (7, 5)])
    def test_succeeds_agreeing_with_what_opencv_decodes(self, width: int, height: int) -> None:
        cv2 = pytest.importorskip("cv2", reason="the capture extra is not installed")
        np = pytest.importorskip("numpy")
        image = np.zeros((height, width, 3), np.uint8)
        for suffix in (".jpg", ".png"):
            ok, encoded = cv2.imencode(suffix, image)
            assert ok
            data = encoded.tobytes()
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert frame_size(data) == (decoded.shape[1], decoded.shape[0]) == (width, height)

    def test_succeeds_for_a_progressive_jpeg_from_pillow(self) -> None:
        image = pytest.importorskip("PIL.Image", reason="the capture extra is not installed")
        import io  # noqa: PLC0415

        out = io.BytesIO()
        image.new("RGB", (321, 123)).save(out, "JPEG", progressive=True)
        assert frame_size(out.getvalue()) == (321, 123)


class TestDecompressionBomb:
    def test_fails_before_decoding_naming_the_pixel_limit(self) -> None:
        bomb = png_bomb(10_000, 10_000)  # 100 megapixels: 300 MB decoded
        assert len(bomb) < 16 * 1024  # small on the wire: the byte limit cannot catch it
        with pytest.raises(ValidationError) as raised:
            check_frames([png_bomb(64, 48), bomb])
        assert raised.value.metadata()["field"] == "frames[1].image"
        assert f"10000 x 10000 pixels; the node decodes at most {MAX_FRAME_PIXELS} pixels" in str(
            raised.value
        )

    def test_succeeds_at_the_limit_and_fails_one_row_past_it(self) -> None:
        check_frame_size(png_bomb(6000, 4000), "frames[0].image")  # 24 megapixels
        with pytest.raises(ValidationError, match="6000 x 4001 pixels"):
            check_frame_size(png_bomb(6000, 4001), "frames[0].image")
