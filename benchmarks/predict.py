"""Prediction speed, printed as JSON: images/s of predict (PNG decoding included) and of inference alone.

    OMP_NUM_THREADS=2 python benchmarks/predict.py                    # built-in hands as PNGs
    OMP_NUM_THREADS=2 python benchmarks/predict.py --folder DIR       # real images

* ``predict_images_per_second``: :func:`handgestures.inference.predict_files` end to end, from
  PNG files on disk to probabilities (decoding on the thread pool, batches of 256), for
  CarlosNet and IvanNet in the precision train.py would pick here (``auto``). Targets on a
  2-core CPU: CarlosNet >= 1,500 images/s, IvanNet >= 150.
* ``inference_images_per_second``: the network alone on decoded batches, PyTorch (that
  precision, and fp32) against onnxruntime (the exported fp32 graph).
* ``images_per_cpu_second`` (predict) and ``load_average``: on a CPU other processes share,
  wall-clock rates fall with the load; the images per CPU-second of this process fall less.

Weights are freshly initialised (the speed does not depend on them). Each figure is the
median of ``--rounds`` timed passes after one warm-up pass.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handgestures.inference.predictor import OnnxPredictor, TorchPredictor, predict_files  # noqa: E402
from handgestures.inference.preprocess import decode_many, list_inputs, to_tensor  # noqa: E402
from handgestures.training.checkpoint import preprocessing  # noqa: E402
from handgestures.training.module import HandGestureClassifier  # noqa: E402
from handgestures.training.train import resolve_precision  # noqa: E402

NETS = {"carlosnet": {"_target_": "handgestures.models.CarlosNet", "num_classes": 6, "fused": True},
        "ivannet": {"_target_": "handgestures.models.IvanNet", "num_classes": 6}}  # fmt: skip
TARGETS = {"carlosnet": 1500, "ivannet": 150}


CPU_RATES: dict[str, float] = {}  # images per CPU-second of this process, by measurement


def median_rate(fn, n: int, rounds: int, key: str | None = None) -> float:
    """Images/s of ``fn`` (median wall time); also records images per CPU-second under ``key``."""
    fn()  # warm-up: first-call allocations and kernel choices
    times, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if key is not None:
        CPU_RATES[key] = round(n / statistics.median(cpu), 1)
    return round(n / statistics.median(times), 1)


def write_pngs(folder: Path, n: int) -> list[str]:
    from handgestures.data.hands import generate_hands

    images, labels, hands = generate_hands(12 * -(-n // 12), seed=5)
    paths = []
    for i in range(n):
        path = folder / f"{i:06d}_{int(labels[i])}{'LR'[int(hands[i])]}.png"
        Image.fromarray(images[i, 0].numpy()).save(path)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", help="a folder of images (default: built-in hands written as PNGs)")
    parser.add_argument("--images", type=int, default=2048, help="images per pass (default 2048)")
    parser.add_argument("--ivannet-images", type=int, default=512, help="images per IvanNet pass (default 512)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--models", default="carlosnet,ivannet")
    args = parser.parse_args()
    precision = resolve_precision("auto", "cpu")
    result = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "precision": precision,
              "batch_size": args.batch_size, "rounds": args.rounds, "predict_images_per_second": {},
              "inference_images_per_second": {}, "targets_predict_images_per_second": TARGETS}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            all_paths, _ = list_inputs(args.folder)
            result["source"] = "folder"
        else:
            all_paths = write_pngs(Path(tmp), args.images)
            result["source"] = "built-in hands as PNG"
        for name in args.models.split(","):
            n = min(len(all_paths), args.images if name == "carlosnet" else args.ivannet_images)
            paths = all_paths[:n]
            torch.manual_seed(0)
            module = HandGestureClassifier(net_spec=NETS[name]).eval()
            description = {"precision": precision, "preprocessing": preprocessing()}
            predictor = TorchPredictor(module, description, Path(name), precision)

            def run_predict(predictor=predictor, paths=paths):
                for _ in predict_files(predictor, paths, batch_size=args.batch_size):
                    pass

            result["predict_images_per_second"][name] = median_rate(run_predict, n, args.rounds, f"predict/{name}")
            batches = [to_tensor([d.pixels for d in decode_many(paths[i : i + args.batch_size])])
                       for i in range(0, n, args.batch_size)]  # fmt: skip
            fp32 = TorchPredictor(module, description, Path(name), "32-true")
            rates = {
                f"pytorch_{precision}": median_rate(
                    lambda p=predictor, bs=batches: [p.logits(b) for b in bs], n, args.rounds
                )
            }
            if precision != "32-true":
                rates["pytorch_32-true"] = median_rate(
                    lambda p=fp32, bs=batches: [p.logits(b) for b in bs], n, args.rounds
                )
            try:
                from handgestures.inference.export import export_net

                onnx_path = Path(tmp) / f"{name}.onnx"
                export_net(module.net, description, onnx_path, check_batch=0, try_fused=False)
                session = OnnxPredictor(onnx_path)
                rates["onnxruntime_fp32"] = median_rate(
                    lambda s=session, bs=batches: [s.logits(b) for b in bs], n, args.rounds
                )
            except ImportError as err:
                rates["onnxruntime_fp32"] = f"not measured: {err}"
            result["inference_images_per_second"][name] = rates
            result.setdefault("images", {})[name] = n
    # on a CPU shared with other work, wall-clock rates fall with the load; CPU time less so
    result["images_per_cpu_second"] = CPU_RATES
    result["load_average"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
