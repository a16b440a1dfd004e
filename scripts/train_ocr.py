"""Train the plate OCR model in plain PyTorch and export it in fast-plate-ocr's format.

    python scripts/train_ocr.py --data DIR/ocr [DIR2/ocr] --out node/capture/models [--minutes 40]

`--data` names OCR sets written by ``scripts/synth_plates.py`` (``train.csv``, ``val.csv``,
``crops/``), pooled; a set written with ``--val-share 0`` adds training crops only, leaving
the held-out split that of the other sets. The model is a small CNN: five conv-BN-ReLU
stages pooled down to a 3 x 16 grid, then one linear layer to ``slots x alphabet``, softmax
per slot. It takes what fast-plate-ocr feeds a model: uint8 NHWC grayscale named ``input``,
normalisation inside; it gives ``plate`` of shape ``(N, slots, alphabet)``. With ``--init``
(a checkpoint, or an exported ONNX whose folded batch norms then stay frozen) training goes
on from earlier weights. The learning rate follows progress through the step count or the
time budget (``--minutes``), whichever is further along.

Written to `--out`: ``plate_ocr.onnx``, ``plate_ocr_config.yaml`` (the plate config) and
``plate_ocr_metrics.json`` (held-out accuracy measured through
``fast_plate_ocr.LicensePlateRecognizer`` on the exported model).

Needs the ``train`` extra (torch, onnx). Runs on one CPU thread unless told otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fast_plate_ocr import LicensePlateRecognizer
from fast_plate_ocr.core.process import read_and_resize_plate_image
from numpy.typing import NDArray
from torch import nn

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
PAD = "_"
SLOTS = 8
HEIGHT, WIDTH = 48, 128
PLATE_CONFIG: dict[str, Any] = {
    "max_plate_slots": SLOTS,
    "alphabet": ALPHABET,
    "pad_char": PAD,
    "img_height": HEIGHT,
    "img_width": WIDTH,
    "keep_aspect_ratio": False,
    "interpolation": "linear",
    "image_color_mode": "grayscale",
    "padding_color": 114,
    "plate_regions": None,
}
SPLITS = ("train", "val")
MODEL_FILE = "plate_ocr.onnx"
CONFIG_FILE = "plate_ocr_config.yaml"
METRICS_FILE = "plate_ocr_metrics.json"


def _stage(inputs: int, outputs: int) -> list[nn.Module]:
    return [
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(),
    ]


class PlateOcr(nn.Module):
    """uint8 NHWC grayscale plates in, per-slot character probabilities out."""

    def __init__(self, slots: int = SLOTS, classes: int = len(ALPHABET)) -> None:
        super().__init__()
        self.slots, self.classes = slots, classes
        self.frozen_norms = False
        self.features = nn.Sequential(
            *_stage(1, 24),
            nn.MaxPool2d(2),  # 24 x 64
            *_stage(24, 48),
            nn.MaxPool2d(2),  # 12 x 32
            *_stage(48, 64),
            *_stage(64, 64),
            nn.MaxPool2d(2),  # 6 x 16
            *_stage(64, 96),
            *_stage(96, 96),
            nn.MaxPool2d((2, 1)),  # 3 x 16
            nn.Conv2d(96, 64, 1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64 * 3 * 16, slots * classes))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Per-slot logits ``(N, slots, classes)`` for uint8 NHWC `images`."""
        x = images.permute(0, 3, 1, 2).float() / 255.0
        return self.head(self.features(x).flatten(1)).view(-1, self.slots, self.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Per-slot probabilities ``(N, slots, classes)``: what fast-plate-ocr decodes."""
        return torch.softmax(self.logits(images), dim=-1)


def from_onnx(model: PlateOcr, path: Path) -> None:
    """Load an exported model's weights into `model`, whose batch norms then stay frozen.

    The export folds each batch norm into the convolution before it; the folded bias goes
    into the norm's shift with unit scale and identity statistics, which is exact as long
    as the norms are not trained (`train` keeps them in eval mode when `model.frozen_norms`).
    """
    import onnx  # noqa: PLC0415 (the train extra)
    from onnx import numpy_helper  # noqa: PLC0415

    graph = onnx.load(str(path)).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = {i: m for i, m in enumerate(model.features) if isinstance(m, nn.BatchNorm2d)}
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    if len(nodes) != len(convs):
        raise SystemExit(f"{path}: {len(nodes)} convolutions, the model has {len(convs)}")
    with torch.no_grad():
        for node, conv in zip(nodes, convs, strict=True):
            conv.weight.copy_(weights[node.input[1]])
            bias = weights[node.input[2]]
            index = list(model.features).index(conv)
            if conv.bias is not None:
                conv.bias.copy_(bias)
                continue
            norm = norms[index + 1]
            norm.weight.fill_(1.0)
            norm.bias.copy_(bias)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
        model.head[1].weight.copy_(weights["head.1.weight"])
        model.head[1].bias.copy_(weights["head.1.bias"])
    model.frozen_norms = True


def start_from(model: PlateOcr, path: Path) -> None:
    """Load `path`, an exported ``.onnx`` or a ``--checkpoint``, into `model`.

    A checkpoint of a run that itself started from an export holds the identity norms
    `from_onnx` wrote: those stay frozen as well, since training them (batch statistics in
    place of the identity) would undo the folding the other weights depend on.
    """
    if path.suffix == ".onnx":
        from_onnx(model, path)
        return
    model.load_state_dict(torch.load(path, weights_only=True))
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    model.frozen_norms = all(
        bool((norm.running_mean == 0).all() and (norm.running_var == 1.0 - norm.eps).all())
        for norm in norms
    )


def encode(text: str) -> list[int]:
    """`text` as alphabet indices, padded to `SLOTS` with the pad character."""
    return [ALPHABET.index(c) for c in text.ljust(SLOTS, PAD)]


def load(folder: Path, split: str) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The crops of `split`, resized as fast-plate-ocr resizes them, and their labels."""
    with (folder / f"{split}.csv").open(newline="") as handle:
        rows = [(folder / row["image_path"], row["plate_text"]) for row in csv.DictReader(handle)]
    if not rows:  # a set written with --val-share 0 holds nothing out
        return np.zeros((0, HEIGHT, WIDTH, 1), np.uint8), np.zeros((0, SLOTS), np.int64)
    images = np.stack(
        [
            read_and_resize_plate_image(path, HEIGHT, WIDTH, image_color_mode="grayscale")
            for path, _ in rows
        ]
    ).astype(np.uint8)
    labels = np.array([encode(text) for _, text in rows], dtype=np.int64)
    return images, labels


def joined(
    sets: Sequence[tuple[NDArray[np.uint8], NDArray[np.int64]]],
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Several loaded sets as one."""
    return np.concatenate([x for x, _ in sets]), np.concatenate([y for _, y in sets])


def accuracy(predicted: NDArray[np.int64], labels: NDArray[np.int64]) -> tuple[float, float]:
    """Whole-plate and per-character accuracy (padding slots count as characters)."""
    right = predicted == labels
    return float(right.all(axis=1).mean()), float(right.mean())


def evaluate(
    model: PlateOcr, images: NDArray[np.uint8], labels: NDArray[np.int64]
) -> tuple[float, float]:
    """`accuracy` of `model` on `images`, in batches of 256."""
    model.eval()
    with torch.no_grad():
        predicted = np.concatenate(
            [
                model.logits(torch.from_numpy(images[i : i + 256])).argmax(-1).numpy()
                for i in range(0, len(images), 256)
            ]
        )
    return accuracy(predicted, labels)


def shift(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Move each image by up to 4 px each way and vary its contrast: cheap augmentation."""
    padded = nn.functional.pad(batch.permute(0, 3, 1, 2).float(), (4, 4, 4, 4), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 9, (2,), generator=generator))
    moved = padded[:, :, dy : dy + HEIGHT, dx : dx + WIDTH]
    gain = torch.empty(len(batch), 1, 1, 1).uniform_(0.7, 1.3, generator=generator)
    mean = moved.mean(dim=(2, 3), keepdim=True)
    out = ((moved - mean) * gain + mean).clamp(0, 255)
    return out.to(torch.uint8).permute(0, 2, 3, 1)


def progress(step: int, steps: int, seconds: float, minutes: float) -> float:
    """How far training is, 0 to 1: by steps, or by time when a time budget is set and nearer."""
    return max(step / steps, seconds / 60 / minutes if minutes else 0.0)


def learning_rate(peak: float, done: float) -> float:
    """A warm-up over the first 5 % of training to `peak`, then a cosine down to nothing.

    Following progress rather than steps keeps the schedule whole when a time budget ends
    training early (a shared machine gives no fixed speed).
    """
    if done < 0.05:
        return peak * (0.1 + 0.9 * done / 0.05)
    return peak * 0.5 * (1 + math.cos(math.pi * (done - 0.05) / 0.95))


def export(model: PlateOcr, out: Path) -> None:
    """Write the ONNX model and its plate config to `out`."""
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (torch.zeros(1, HEIGHT, WIDTH, 1, dtype=torch.uint8),),
        str(out / MODEL_FILE),
        input_names=["input"],
        output_names=["plate"],
        dynamic_axes={"input": {0: "batch"}, "plate": {0: "batch"}},
        opset_version=18,
        dynamo=False,
    )
    lines = [f"{key}: {json.dumps(value)}" for key, value in PLATE_CONFIG.items()]
    (out / CONFIG_FILE).write_text("\n".join(lines) + "\n")


def served_accuracy(
    out: Path, images: NDArray[np.uint8], labels: NDArray[np.int64]
) -> tuple[float, float]:
    """`accuracy` of the exported model as fast-plate-ocr serves it."""
    reader = LicensePlateRecognizer(
        onnx_model_path=out / MODEL_FILE, plate_config_path=out / CONFIG_FILE, device="cpu"
    )
    plates = [
        p.plate
        for i in range(0, len(images), 256)
        for p in reader.run(images[i : i + 256], remove_pad_char=False)
    ]
    predicted = np.array([encode(p.ljust(SLOTS, PAD)[:SLOTS]) for p in plates], dtype=np.int64)
    return accuracy(predicted, labels)


def train(
    model: PlateOcr,
    train_set: tuple[NDArray[np.uint8], NDArray[np.int64]],
    val_set: tuple[NDArray[np.uint8], NDArray[np.int64]],
    args: argparse.Namespace,
    started: float,
) -> tuple[int, int]:
    """Train `model`, leave it at its best epoch on `val_set`; that epoch and how many ran."""
    (train_x, train_y), (val_x, val_y) = train_set, val_set
    generator = torch.Generator().manual_seed(args.seed)
    steps = args.epochs * -(-len(train_x) // args.batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    loss_of = nn.CrossEntropyLoss(label_smoothing=0.05)
    best, best_epoch = -1.0, 0
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    epoch, step, done = 0, 0, 0.0
    while done < 1:
        epoch += 1
        model.train()
        for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            norm.train(not model.frozen_norms)
        order = torch.randperm(len(train_x), generator=generator).numpy()
        for i in range(0, len(order), args.batch):
            done = progress(step, steps, time.monotonic() - started, args.minutes)
            if done >= 1:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(args.lr, done)
            step += 1
            picked = order[i : i + args.batch]
            batch = shift(torch.from_numpy(train_x[picked]), generator)
            logits = model.logits(batch).flatten(0, 1)
            loss = loss_of(logits, torch.from_numpy(train_y[picked]).flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        done = progress(step, steps, time.monotonic() - started, args.minutes)
        whole, chars = evaluate(model, val_x, val_y)
        minutes = (time.monotonic() - started) / 60
        print(
            f"epoch {epoch}: plates {whole:.4f} chars {chars:.4f} ({minutes:.1f} min)", flush=True
        )
        if whole > best:
            best, best_epoch = whole, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return best_epoch, epoch


def main(argv: Sequence[str] | None = None) -> int:
    """Train, keep the best epoch on the validation set, export it and measure it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="OCR sets")
    parser.add_argument("--out", type=Path, required=True, help="where the model goes")
    parser.add_argument("--epochs", type=int, default=30, help="at most this many")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--minutes", type=float, default=0, help="time budget: the schedule ends then (0: none)"
    )
    parser.add_argument(
        "--init", type=Path, help="start from these weights: a --checkpoint, or an exported .onnx"
    )
    parser.add_argument("--checkpoint", type=Path, help="also save the best weights here (.pt)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    train_set, val_set = (joined([load(folder, split) for folder in args.data]) for split in SPLITS)
    print(f"{len(train_set[0])} training crops, {len(val_set[0])} held out", flush=True)
    model = PlateOcr()
    if args.init:
        start_from(model, args.init)
    best_epoch, epochs = train(model, train_set, val_set, args, started)
    if args.checkpoint:
        torch.save(model.state_dict(), args.checkpoint)
    export(model, args.out)
    whole, chars = served_accuracy(args.out, *val_set)
    metrics = {
        "held_out_crops": len(val_set[0]),
        "training_crops": len(train_set[0]),
        "best_epoch": best_epoch,
        "epochs_run": epochs,
        "whole_plate_accuracy": round(whole, 4),
        "character_accuracy": round(chars, 4),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "threads": args.threads,
    }
    (args.out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
