"""Train the plate detector (Ultralytics YOLO11n from its YAML) and export it to ONNX.

    python scripts/train_detector.py --data DIR/detect [DIR/detect ...] --out node/capture/models

`--data` is one or more detection sets written by ``scripts/synth_plates.py``: the model trains
on the training scenes of them all and is measured on the held-out scenes of those that have
some (a set written with ``--val-share 0`` only adds training scenes).
The model is built from ``yolo11n.yaml``, so no pretrained weights are fetched, and trained at
`--imgsz` (320 by default), the size it then serves at. With `--weights` it starts from a
checkpoint Ultralytics wrote instead (``RUNS/detector/weights/best.pt``), and with
``--epochs 0`` as well it only measures and exports those weights at `--imgsz`: the network is
fully convolutional, so weights trained at one size can serve at another. To continue such
a checkpoint gently, `--lr0` trains with AdamW at that rate instead of Ultralytics' automatic
choice (AdamW at 0.002 for one class), and `--warmup-epochs 0` skips the warm-up that would
otherwise spend the first epochs ramping the rate up from zero again.

Ultralytics is held offline before it is imported: ``YOLO_OFFLINE`` (no update or online
checks), ``YOLO_AUTOINSTALL=0`` (no pip), a settings folder of its own with a local font
where it would otherwise download Arial.ttf, settings ``sync=False``, and every run written
under `--runs`.

Written to `--out`: ``plate_detector.onnx`` (output ``[1, 5, N]``: cx, cy, w, h, score; no NMS
inside) and ``plate_detector_metrics.json`` (precision, recall, mAP on the held-out scenes).

Needs the ``train`` extra (torch, ultralytics).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import synth_plates

MODEL_FILE = "plate_detector.onnx"
METRICS_FILE = "plate_detector_metrics.json"


def offline(settings: Path) -> None:
    """Set Ultralytics' environment so that it reaches for no network; call before importing it."""
    font = synth_plates.font_file("DejaVuSans.ttf")
    (settings / "Ultralytics").mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = settings / "Ultralytics" / name
        if not target.exists():
            shutil.copyfile(font, target)
    os.environ.update(
        {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "YOLO_CONFIG_DIR": str(settings)}
    )


def dataset_file(sets: Sequence[Path], runs: Path) -> Path:
    """The ``data.yaml`` to train on: a set's own, or one under `runs` naming every set's."""
    if len(sets) == 1:
        return (sets[0] / "data.yaml").resolve()
    train = [(folder / "images" / "train").resolve() for folder in sets]
    held_out = [path for folder in sets if (path := (folder / "images" / "val").resolve()).is_dir()]
    if not held_out:
        raise SystemExit("none of the --data sets holds out any scenes to measure the model on")
    runs.mkdir(parents=True, exist_ok=True)
    target = runs / "data.yaml"
    # JSON is valid YAML: each path quoted whatever characters it holds
    lines = ["train:", *(f"  - {json.dumps(str(p))}" for p in train), "val:"]
    lines += [*(f"  - {json.dumps(str(p))}" for p in held_out), "names:", "  0: plate"]
    target.write_text("\n".join(lines) + "\n")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Train, validate on the held-out scenes, export to ONNX, write the metrics."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="detection sets")
    parser.add_argument("--out", type=Path, required=True, help="where the model goes")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="Ultralytics' own output")
    parser.add_argument("--weights", type=Path, help="start from this Ultralytics checkpoint (.pt)")
    parser.add_argument("--epochs", type=int, default=30, help="0: export --weights untrained")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hours", type=float, default=0, help="stop after this long (0: never)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr0", type=float, help="AdamW at this rate (default: automatic)")
    parser.add_argument("--warmup-epochs", type=float, help="default: Ultralytics' (3)")
    args = parser.parse_args(argv)
    if args.epochs == 0 and not args.weights:
        raise SystemExit("--epochs 0 exports --weights as they are: name them")
    runs = args.runs.resolve()
    offline(runs / "settings")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch  # noqa: PLC0415 (after the environment above)
    from ultralytics import YOLO, settings  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    settings.update({"sync": False})
    started = time.monotonic()
    # without --weights, a YAML: built from scratch, nothing downloaded
    model = YOLO(str(args.weights) if args.weights else "yolo11n.yaml")
    options: dict[str, Any] = {
        "data": str(dataset_file(args.data, runs)),
        "imgsz": args.imgsz,
        "epochs": args.epochs,
        "batch": args.batch,
        "device": "cpu",
        "workers": 0,
        "project": str(runs),
        "name": "detector",
        "exist_ok": True,
        # False builds a fresh network from the YAML: with --weights it would drop them
        "pretrained": bool(args.weights),
        "amp": False,
        "plots": False,
        "seed": args.seed,
        "verbose": False,
    }
    if args.hours:
        options["time"] = args.hours
    if args.lr0 is not None:  # Ultralytics ignores lr0 under its default optimizer="auto"
        options.update(optimizer="AdamW", lr0=args.lr0)
    if args.warmup_epochs is not None:
        options["warmup_epochs"] = args.warmup_epochs
    epochs_run = 0
    if args.epochs:
        model.train(**options)
        epochs_run = model.trainer.epoch + 1  # with --hours, as many as the time allowed
    metrics = model.val(
        data=options["data"],
        imgsz=args.imgsz,
        batch=args.batch,
        device="cpu",
        workers=0,
        project=str(runs),
        name="val",
        exist_ok=True,
        plots=False,
    )
    exported = Path(model.export(format="onnx", imgsz=args.imgsz, dynamic=False, simplify=False))
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported, args.out / MODEL_FILE)
    summary = {
        "imgsz": args.imgsz,
        "epochs": epochs_run,
        "precision": round(float(metrics.box.mp), 4),
        "recall": round(float(metrics.box.mr), 4),
        "map50": round(float(metrics.box.map50), 4),
        "map50_95": round(float(metrics.box.map), 4),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "threads": args.threads,
    }
    (args.out / METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
