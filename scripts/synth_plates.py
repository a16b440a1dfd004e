"""Synthetic US licence plates: a detection set (YOLO labels) and an OCR set (crops + text).

    python scripts/synth_plates.py --out DIR [--scenes 1000] [--crops 20000] [--seed 0]
        [--stacked 0.25] [--vanity 0.1]

Plates are drawn in the styles of six states (California, Texas, New York, Florida, Arizona,
Pennsylvania): background colours and bands, the state name, a slogan, the serial in the
state's format and colour, and, on some plates, two stacked letters at the left as
specialty plates carry them. The stacked letters are read first, top then bottom.

Each plate is warped into a scene (perspective, rotation, scale from a few dozen pixels to
half the frame) over a procedural background with car-like shapes and distracting signs,
then the frame is degraded: blur, glare, night or infrared-like grey, noise, JPEG artefacts.

Written under DIR:

- ``detect/images/{train,val}/*.jpg`` and ``detect/labels/{train,val}/*.txt`` (YOLO: class 0,
  centre and size relative to the frame) and ``detect/data.yaml``;
- ``ocr/crops/*.png`` (each plate cut from its frame by its box, with a little jitter, as a
  detector would cut it) and ``ocr/train.csv``, ``ocr/val.csv`` with columns
  ``image_path,plate_text`` (fast-plate-ocr's annotation format).

Fonts: DejaVu (Bitstream Vera licence) from the system's fonts folder (Debian's
fonts-dejavu-core and fonts-dejavu-extra, which ``scripts/test.sh`` installs when they are
missing) or matplotlib's. A missing one is an error, never a silent stand-in: the shipped
models learned these faces. Everything follows from ``--seed``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

Rgb = tuple[int, int, int]
Font = ImageFont.FreeTypeFont
Frame = NDArray[np.uint8]
Quad = NDArray[np.float32]

PLATE_W, PLATE_H = 300, 150  # a 12 x 6 inch plate at 25 px per inch
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # most states issue no I, O or Q in serials
DIGITS = "0123456789"
ALNUM = DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")
SERIAL_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSansCondensed-Bold.ttf", "DejaVuSansMono-Bold.ttf")
SCRIPT_FONTS = ("DejaVuSerif-BoldItalic.ttf", "DejaVuSerifCondensed-BoldItalic.ttf")
BANNER_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf")


@dataclass(frozen=True)
class PlateStyle:
    """How one state draws its plates.

    Attributes:
        state: The state's name as printed.
        formats: Serial formats: ``L`` a letter, ``D`` a digit, ``-``/space printed as is.
        background: The plate's colour (top, bottom: a vertical gradient).
        ink: The serial's colour.
        state_ink: The state name's colour.
        state_font: Fonts the state name is drawn with (script or block).
        slogan: The line at the bottom.
        band: A coloured band behind the state name, or None.
        stacked: Whether specialty plates with two stacked letters are issued.
    """

    state: str
    formats: tuple[str, ...]
    background: tuple[Rgb, Rgb]
    ink: Rgb
    state_ink: Rgb
    state_font: tuple[str, ...]
    slogan: str
    band: Rgb | None = None
    stacked: bool = False


STYLES = (
    PlateStyle(
        "California",
        ("DLLLDDD",),
        ((250, 250, 250), (232, 236, 240)),
        (20, 30, 110),
        (200, 20, 30),
        SCRIPT_FONTS,
        "dmv.ca.gov",
        stacked=True,
    ),
    PlateStyle(
        "TEXAS",
        ("LLL-DDDD", "LLL DDDD"),
        ((245, 245, 240), (215, 215, 205)),
        (15, 15, 15),
        (15, 15, 15),
        BANNER_FONTS,
        "THE LONE STAR STATE",
    ),
    PlateStyle(
        "NEW YORK",
        ("LLL-DDDD",),
        ((250, 240, 200), (240, 220, 150)),
        (20, 30, 90),
        (250, 250, 250),
        BANNER_FONTS,
        "EXCELSIOR",
        band=(20, 40, 120),
        stacked=True,
    ),
    PlateStyle(
        "FLORIDA",
        ("LLL LDD", "LLLD DD"),
        ((252, 252, 252), (235, 240, 230)),
        (10, 90, 50),
        (10, 90, 50),
        BANNER_FONTS,
        "Sunshine State",
    ),
    PlateStyle(
        "ARIZONA",
        ("LLLDDDD",),
        ((150, 200, 240), (250, 210, 150)),
        (110, 20, 30),
        (110, 20, 30),
        BANNER_FONTS,
        "Grand Canyon State",
    ),
    PlateStyle(
        "PENNSYLVANIA",
        ("LLL-DDDD",),
        ((250, 250, 250), (250, 240, 200)),
        (20, 40, 110),
        (250, 250, 250),
        BANNER_FONTS,
        "visitPA.com",
        band=(20, 40, 110),
        stacked=True,
    ),
)


@dataclass(frozen=True)
class Specials:
    """How often `render_plate` draws a plate other than its state's standard serial.

    Attributes:
        stacked: The share of specialty plates (two stacked letters) among the plates of
            states that issue them.
        vanity: The share of vanity plates (two to seven of any letter or digit) among the
            plates that are not specialty plates.
    """

    stacked: float = 0.25
    vanity: float = 0.1


SPECIALS = Specials()


@dataclass(frozen=True)
class Plate:
    """A rendered plate: its RGB image and the text a reader must give (letters, digits).

    Attributes:
        image: The plate, `PLATE_H` x `PLATE_W` RGB.
        text: What a reader must give: the stacked letters (if any), then the serial.
        stacked: How many stacked letters lead the text (0 or 2).
    """

    image: Frame
    text: str
    stacked: int = 0


@cache
def font_file(name: str) -> Path:
    """The path of the DejaVu font file `name`, from the system or matplotlib.

    Raises:
        SystemExit: It is in neither.
    """
    folders = [Path(folder) for folder in _FONT_DIRS]
    try:
        import matplotlib  # noqa: PLC0415 (optional: only a source of fonts)

        folders.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(
        f"font {name} not found in {', '.join(map(str, folders))}:"
        " apt-get install fonts-dejavu-core fonts-dejavu-extra"
    )


@cache
def font(name: str, size: int) -> Font:
    """The DejaVu font `name` at `size` pixels."""
    return ImageFont.truetype(font_file(name), size)


def serial(rng: np.random.Generator, fmt: str) -> str:
    """A serial in `fmt` (``L`` a letter, ``D`` a digit, other characters kept)."""
    pool = {"L": LETTERS, "D": DIGITS}
    return "".join(str(rng.choice(list(pool[c]))) if c in pool else c for c in fmt)


def plate_text(printed: str) -> str:
    """What a reader gives for `printed`: its letters and digits."""
    return "".join(c for c in printed.upper() if c in ALNUM)


def _fit(draw: ImageDraw.ImageDraw, text: str, name: str, width: int, height: int) -> Font:
    """The largest size of font `name` at which `text` fits in `width` x `height`."""
    size = height
    while size > 6:
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font(name, size))
        if x1 - x0 <= width and y1 - y0 <= height:
            break
        size -= 2
    return font(name, size)


def _centered(
    draw: ImageDraw.ImageDraw, text: str, face: Font, box: tuple[int, int, int, int], ink: Rgb
) -> None:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=face)
    left = (box[0] + box[2] - (x1 - x0)) / 2 - x0
    top = (box[1] + box[3] - (y1 - y0)) / 2 - y0
    draw.text((left, top), text, font=face, fill=ink)


def render_plate(
    rng: np.random.Generator,
    style: PlateStyle | None = None,
    *,
    special: Specials | None = SPECIALS,
) -> Plate:
    """Draw one plate of `style` (a random one when None) with a random serial.

    With `special`, that share of plates are specialty plates (stacked letters) or vanity
    plates; with None, every plate has a standard serial.
    """
    style = style or STYLES[int(rng.integers(len(STYLES)))]
    top, bottom = np.array(style.background, dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, PLATE_H, dtype=np.float32)[:, None, None]
    pixels = top * (1 - ramp) + bottom * ramp + rng.normal(0, 3, (PLATE_H, PLATE_W, 3))
    image = Image.fromarray(
        np.clip(np.broadcast_to(pixels, (PLATE_H, PLATE_W, 3)), 0, 255).astype(np.uint8)
    )
    draw = ImageDraw.Draw(image)
    if style.band:
        draw.rectangle((0, 0, PLATE_W, 34), fill=style.band)
    state_face = _fit(draw, style.state, str(rng.choice(list(style.state_font))), 200, 28)
    _centered(draw, style.state, state_face, (0, 3, PLATE_W, 33), style.state_ink)
    slogan_face = _fit(draw, style.slogan, "DejaVuSans.ttf", 180, 16)
    _centered(draw, style.slogan, slogan_face, (0, 124, PLATE_W, 144), style.ink)
    serial_font = str(rng.choice(list(SERIAL_FONTS)))
    left = 14
    text = ""
    if special and style.stacked and rng.random() < special.stacked:
        pair = serial(rng, "LL")
        small = _fit(draw, "W", serial_font, 34, 38)
        _centered(draw, pair[0], small, (12, 40, 48, 80), style.ink)
        _centered(draw, pair[1], small, (12, 82, 48, 122), style.ink)
        printed, left, text = serial(rng, str(rng.choice(["DDDD", "DDDDD", "LDDD"]))), 50, pair
    elif special and rng.random() < special.vanity:  # two to seven of any letter or digit
        printed = "".join(rng.choice(list(ALNUM), size=int(rng.integers(2, 8))))
    else:
        printed = serial(rng, str(rng.choice(list(style.formats))))
    face = _fit(draw, printed, serial_font, PLATE_W - left - 14, int(rng.integers(66, 80)))
    _centered(draw, printed, face, (left, 38, PLATE_W - 14, 124), style.ink)
    draw.rounded_rectangle(
        (1, 1, PLATE_W - 2, PLATE_H - 2), radius=10, outline=(90, 90, 90), width=2
    )
    return Plate(np.asarray(image, dtype=np.uint8).copy(), text + plate_text(printed), len(text))


def background(rng: np.random.Generator, height: int, width: int) -> Frame:
    """A procedural scene: a sky-to-road gradient, car-like boxes, and signs with text."""
    top, bottom = rng.integers(0, 256, (2, 3)).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    base = top * (1 - ramp) + bottom * ramp
    frame = np.ascontiguousarray(np.broadcast_to(base, (height, width, 3)).astype(np.uint8))
    for _ in range(int(rng.integers(3, 12))):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = (
            int(rng.integers(width // 10, width // 2)),
            int(rng.integers(height // 10, height // 2)),
        )
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.rectangle(frame, (x, y), (x + w, y + h), colour, -1)
        else:
            cv2.ellipse(frame, (x, y), (w // 2, h // 3), 0, 0, 360, colour, -1)
    for _ in range(int(rng.integers(0, 4))):  # signs and stickers: text that is not a plate
        words = "".join(rng.choice(list(ALNUM + "  "), size=int(rng.integers(3, 10))))
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(20, height))
        ink = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.putText(
            frame, words, (x, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.4, 1.5)), ink, 2
        )
    noise = rng.normal(0, 6, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def corners(rng: np.random.Generator, size: tuple[int, int], width: float) -> Quad:
    """Where a plate `width` pixels wide lands in a frame of `size` (height, width): 4 corners.

    The plate is rotated up to 12 degrees and given a random perspective (a camera above and
    to the side of the road), then put anywhere it fits whole.
    """
    fh, fw = size
    h = width * PLATE_H / PLATE_W
    skew = rng.uniform(-0.08, 0.08, (4, 2)) * np.array([width, h])
    quad = np.array([[0, 0], [width, 0], [width, h], [0, h]]) + skew
    angle = np.deg2rad(rng.uniform(-12, 12))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    quad = (quad - quad.mean(0)) @ rotation.T
    low = -quad.min(0)
    high = np.array([fw, fh]) - quad.max(0)
    return np.asarray(quad + rng.uniform(low, np.maximum(high, low + 1)), dtype=np.float32)


def paint(frame: Frame, plate: Frame, quad: Quad) -> None:
    """Warp `plate` onto `frame` so that its corners land on `quad`."""
    fh, fw = frame.shape[:2]
    source = np.array([[0, 0], [PLATE_W, 0], [PLATE_W, PLATE_H], [0, PLATE_H]], np.float32)
    matrix = cv2.getPerspectiveTransform(source, quad)
    warped = cv2.warpPerspective(plate, matrix, (fw, fh), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((PLATE_H, PLATE_W), 255, np.uint8), matrix, (fw, fh))
    frame[mask > 127] = warped[mask > 127]


def degrade(rng: np.random.Generator, frame: Frame, smallest: float) -> Frame:
    """Blur, glare, night or infrared grey, noise and JPEG artefacts, each at random.

    Blur is bounded by `smallest`, the width of the smallest plate in pixels, so that it
    stays legible to a person.
    """
    out = frame.astype(np.float32)
    if rng.random() < 0.3:  # glare: a bright blob
        h, w = frame.shape[:2]
        ys, xs = np.ogrid[:h, :w]
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.3) * w
        out += (
            rng.uniform(80, 200)
            * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * r * r))[..., None]
        )
    mode = rng.random()
    if mode < 0.2:  # infrared: grey, high contrast, plates bright
        grey = out.mean(axis=2, keepdims=True)
        out = np.repeat(np.clip((grey - 60) * rng.uniform(1.2, 1.8) + 40, 0, 255), 3, axis=2)
    elif mode < 0.35:  # night: dark and grainy
        out = out * rng.uniform(0.25, 0.55)
    else:
        out = out * rng.uniform(0.7, 1.2) + rng.uniform(-30, 30)
    out += rng.normal(0, rng.uniform(1, 8), out.shape)
    image = np.clip(out, 0, 255).astype(np.uint8)
    blur, most = rng.random(), max(3, int(smallest / 30))
    if blur < 0.25:
        k = int(rng.choice([3, 5])) if most >= 5 else 3
        image = np.asarray(cv2.GaussianBlur(image, (k, k), 0), dtype=np.uint8)
    elif blur < 0.4:  # motion
        k = int(rng.integers(3, min(8, most) + 1))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1 / k
        image = np.asarray(cv2.filter2D(image, -1, kernel), dtype=np.uint8)
    quality = int(rng.integers(25, 96))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), dtype=np.uint8) if ok else image


def box_of(quad: Quad, frame: Frame) -> tuple[int, int, int, int]:
    """The axis-aligned box around `quad`, clipped to `frame`: x0, y0, x1, y1."""
    h, w = frame.shape[:2]
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int)
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def scene(
    rng: np.random.Generator, size: tuple[int, int] = (480, 640), plates: int | None = None
) -> tuple[Frame, list[tuple[str, tuple[int, int, int, int]]]]:
    """A degraded BGR frame of `size` (height, width) with 1 to 3 plates, their texts and boxes."""
    h, w = size
    frame = background(rng, h, w)
    found: list[tuple[str, tuple[int, int, int, int]]] = []
    smallest = float(w)
    for _ in range(plates if plates is not None else int(rng.integers(1, 4))):
        width = float(np.exp(rng.uniform(np.log(0.06 * w), np.log(0.5 * w))))
        quad = corners(rng, size, width)
        box = box_of(quad, frame)
        if any(_overlaps(box, other) for _, other in found):
            continue  # plates never hide one another
        plate = render_plate(rng)
        paint(frame, plate.image[..., ::-1], quad)
        found.append((plate.text, box))
        smallest = min(smallest, width)
    return degrade(rng, frame, smallest), found


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def crop(rng: np.random.Generator, frame: Frame, box: tuple[int, int, int, int]) -> Frame:
    """Cut `box` from `frame` as a detector might: each edge up to 6 % in or 15 % out.

    A detector's boxes come out looser more often than tighter, so the jitter leans out.
    """
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    dx0, dx1 = rng.uniform(-0.06, 0.15, 2) * w * np.array([-1, 1])
    dy0, dy1 = rng.uniform(-0.06, 0.15, 2) * h * np.array([-1, 1])
    fh, fw = frame.shape[:2]
    left, right = max(0, int(x0 + dx0)), min(fw, int(x1 + dx1))
    top, bottom = max(0, int(y0 + dy0)), min(fh, int(y1 + dy1))
    return frame[top:bottom, left:right]


def ocr_sample(rng: np.random.Generator, special: Specials = SPECIALS) -> tuple[Frame, str]:
    """One OCR crop (BGR) and its text: a plate in a small scene of its own, cut by its box."""
    plate = render_plate(rng, special=special)
    width = float(np.exp(rng.uniform(np.log(50), np.log(300))))
    size = int(width * rng.uniform(0.9, 1.4)), int(width * rng.uniform(1.3, 1.8))
    frame = background(rng, *size)
    quad = corners(rng, size, width)
    paint(frame, plate.image[..., ::-1], quad)
    frame = degrade(rng, frame, width)
    return crop(rng, frame, box_of(quad, frame)), plate.text


def write_detection(out: Path, rng: np.random.Generator, count: int, val_share: float) -> None:
    """Write `count` scenes with YOLO labels, `val_share` of them for validation."""
    for n in range(count):
        split = "val" if n < count * val_share else "train"
        frame, plates = scene(rng)
        h, w = frame.shape[:2]
        lines = [
            f"0 {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f}"
            f" {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
            for _, (x0, y0, x1, y1) in plates
        ]
        for kind, data in (("images", None), ("labels", "\n".join(lines) + "\n")):
            (out / kind / split).mkdir(parents=True, exist_ok=True)
            if data is None:
                cv2.imwrite(str(out / kind / split / f"{n:06d}.jpg"), frame)
            else:
                (out / kind / split / f"{n:06d}.txt").write_text(data)
    (out / "data.yaml").write_text(
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n  0: plate\n"
    )


def write_ocr(
    out: Path, rng: np.random.Generator, count: int, val_share: float, special: Specials
) -> None:
    """Write `count` crops and their texts, `val_share` of them in val.csv."""
    (out / "crops").mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
    for n in range(count):
        image, text = ocr_sample(rng, special)
        name = f"crops/{n:06d}.png"
        cv2.imwrite(str(out / name), image)
        rows["val" if n < count * val_share else "train"].append((name, text))
    for split, entries in rows.items():
        with (out / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_path", "plate_text"])
            writer.writerows(entries)


def encode_jpeg(frame: Frame, quality: int = 90) -> bytes:
    """`frame` (BGR) as JPEG bytes."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode the frame as JPEG")
    return data.tobytes()


def main(argv: Sequence[str] | None = None) -> int:
    """Write the data sets the arguments ask for."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--scenes", type=int, default=1000, help="detection frames")
    parser.add_argument("--crops", type=int, default=20000, help="OCR crops")
    parser.add_argument("--val-share", type=float, default=0.1, help="share kept for validation")
    parser.add_argument(
        "--stacked",
        type=float,
        default=SPECIALS.stacked,
        help="share of OCR crops with stacked letters, of the states that issue them",
    )
    parser.add_argument(
        "--vanity", type=float, default=SPECIALS.vanity, help="share of vanity plates in OCR crops"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # Independent streams: the OCR set does not change when --scenes does.
    detect_rng, ocr_rng = (np.random.default_rng([args.seed, n]) for n in range(2))
    if args.scenes:
        write_detection(args.out / "detect", detect_rng, args.scenes, args.val_share)
    if args.crops:
        special = Specials(stacked=args.stacked, vanity=args.vanity)
        write_ocr(args.out / "ocr", ocr_rng, args.crops, args.val_share, special)
    print(f"wrote {args.scenes} scenes and {args.crops} crops under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
