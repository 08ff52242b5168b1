"""Benchmark the shipped codec: rate-distortion on held-out photos against JPEG/WebP, and coding speed.

Prints one JSON object:

* ``rd``: for each photo set (the 5 photos of ../shared/datasets/photos that
  training held out, and scikit-image's astronaut/coffee/chelsea), the RD points
  of every quality level (each with ``psnr_unquantised``, the PSNR of its
  transforms with ``y`` not rounded: a level decoding close to it is limited by
  its transforms, not its rate), JPEG (4:2:0) and WebP PSNR at the codec's rates, the
  BD-rates, and PSNR of all three at the target rates 0.25 / 0.5 / 1.0 bpp
  (linear in log-rate between measured points; null outside them);
* ``rd_refined`` (with ``--refine N``): the same, with N steps of encoder-side
  latent refinement per image and level (Yang et al. 2020; same decoder), so the
  gain is measured against ``rd`` in the same run;
* ``speed``: encode and decode megapixels per second on a 768x512 photo (median
  of 5 runs after a warm-up), next to Pillow's JPEG encoder on the same image
  as the anchor measured in the same run; with ``--refine N``, also the
  refined encode (one run).

Usage: python benchmarks/compression.py [--weights DIR] [--quality Q] [--refine N] [--held-out-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cnnkit.codec import baselines  # noqa: E402
from pipelines import image_compression  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"
TARGET_BPP = (0.25, 0.5, 1.0)
HOLDOUT = 5  # as in data/weights/train.sh


def _at_targets(report: dict) -> dict:
    curves = {"codec": sorted(report["codec"], key=lambda p: p["bpp"])}
    curves.update({name: report[name]["curve"] for name in baselines.CODECS})
    return {
        f"{bpp:g}": {name: baselines.interpolate_psnr(curve, bpp) for name, curve in curves.items()} for bpp in TARGET_BPP
    }


def _median_seconds(function, repeats: int = 5) -> float:
    function()  # warm-up: TensorFlow traces and allocates on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="codec files folder (default: the shipped data/weights)")
    parser.add_argument("--model", default="factorized")
    parser.add_argument("--quality", type=int, default=3, help="quality level timed for speed")
    parser.add_argument("--refine", type=int, default=0, help="also measure N steps of encoder-side latent refinement")
    parser.add_argument("--held-out-only", action="store_true", help="skip the scikit-image photos")
    args = parser.parse_args()
    image_compression.check_refine(args.refine)

    codecs = image_compression.load_codecs(args.weights, args.model)
    sets = {"scikit-image": list(image_compression.sample_photos().values())}
    if PHOTOS.is_dir():
        _, held_out = image_compression.split_holdout(image_compression.list_images(PHOTOS), HOLDOUT)
        held_out_set = {"photos-held-out": [image_compression.read_pixels(p) for p in held_out]}
        sets = held_out_set if args.held_out_only else {**held_out_set, **sets}
    results = {}
    for key, refine_steps in (("rd", 0), ("rd_refined", args.refine)) if args.refine else (("rd", 0),):
        results[key] = {}
        for name, images in sets.items():
            report = image_compression.rd_report(codecs, images, refine_steps)
            results[key][name] = {"images": len(images), **report, "psnr_at_target_bpp": _at_targets(report)}
            print(f"{key} {name}: {results[key][name]['psnr_at_target_bpp']}", file=sys.stderr, flush=True)

    photo = next(iter(sets.values()))[0]  # a held-out photo when there are any
    pixels = np.asarray(Image.fromarray(photo).resize((768, 512), Image.Resampling.LANCZOS))
    codec = codecs[args.quality]
    data = codec.encode(pixels)
    megapixels = 768 * 512 / 1e6
    encode_s = _median_seconds(lambda: codec.encode(pixels))
    decode_s = _median_seconds(lambda: codec.decode(data))
    jpeg_s = _median_seconds(lambda: baselines.compress(pixels, "jpeg", 75))
    speed = {
        "image": "768x512",
        "quality": args.quality,
        "bpp": 8 * len(data) / (768 * 512),
        "encode_seconds": encode_s,
        "decode_seconds": decode_s,
        "encode_megapixels_per_second": megapixels / encode_s,
        "decode_megapixels_per_second": megapixels / decode_s,
        "anchor_jpeg_encode_decode_seconds": jpeg_s,
        "encode_vs_jpeg_ratio": encode_s / jpeg_s,
        "cpu_count": os.cpu_count(),
    }
    if args.refine:
        start = time.perf_counter()
        codec.encode(pixels, args.refine)
        speed["refined_encode_seconds"] = time.perf_counter() - start
        speed["refine_steps"] = args.refine
    print(json.dumps({"model": args.model, **results, "speed": speed}, indent=2))


if __name__ == "__main__":
    main()
