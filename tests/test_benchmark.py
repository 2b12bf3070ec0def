"""benchmarks/benchmark.py --smoke and the micro-benchmarks: the JSON documents' structure only (never timings)."""

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from handgestures.training.train import resolve_precision


def test_smoke_benchmark_prints_one_json_document(tmp_path):
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "benchmark.py"), "--smoke", "--models", "carlosnet",
        "--variants", "base", "--precisions", "32-true", "--skip", "startup,keras", "--threads", "1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # stdout holds the JSON document and nothing else
    assert report["size"] == "smoke" and "[benchmark]" in proc.stderr
    assert report["gemm"]["fp32_gflops"] > 0 and report["gemm"]["bf16_gflops"] > 0
    for kind in ("cold", "warm"):
        load = report["data_load"][kind]
        assert load["images"] == 240 and load["seconds"] >= 0 and load["peak_rss_mb"] > 0
    run = report["train"]["carlosnet/base/32-true"]
    assert "error" not in run, run
    for key in ("train_images_per_s", "train_images_per_s_median", "bare_step_images_per_s",
                "bare_data_step_images_per_s", "lightning_vs_bare", "infer_images_per_s",
                "infer_aug_images_per_s", "peak_rss_mb", "checkpoint_save_s"):  # fmt: skip
        assert isinstance(run[key], (int, float)) and run[key] > 0, (key, run[key])
    assert run["threads"] == 1 and run["splits"]["train"] + run["splits"]["val"] + run["splits"]["test"] == 240
    assert run["macs_per_image"] > 1e6  # CarlosNet: about 2 M multiply-accumulates per image
    projection = report["projection"]["32-true"]
    for split in ("measured_split", "study_21600"):
        assert projection[split]["total_s"] > 0 and set(projection[split]["runs"]) == {"carlosnet/base"}
    assert projection["study_21600"]["split"] == {"train": 14400, "val": 3600, "test": 3600}
    resolved = resolve_precision("auto")
    assert report["projection"]["default_precision"] == {"configured": "auto", "resolved": resolved}
    # the default's projection is given when its precision was measured (only 32-true here)
    assert ("default" in report["projection"]) == (resolved == "32-true")


def test_carlosnet_benchmark_prints_one_json_document():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "carlosnet.py"), "--steps", "2", "--rounds", "1",
           "--repeats", "1", "--threads", "1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["threads"] == 1 and report["batch"] == 32
    for layout in ("channels_last", "nchw"):
        for dtype in ("fp32", "bf16"):
            for section, first, second in (("layer_order", "pool_first", "keras_order"),
                                           ("fused_first_block", "fused", "unfused")):  # fmt: skip
                case = report[section][f"{layout}/{dtype}"]
                ratio = case[f"{first}_images_per_s"] / case[f"{second}_images_per_s"]
                assert case[f"{first}_over_{second}"] == pytest.approx(ratio, abs=1e-3)
        for dtype in ("float32", "bfloat16"):
            for layer in ("conv1", "pool1", "conv2", "pool2", "conv3"):
                assert report["layers_ms"][f"{layout}/{dtype}/{layer}"] > 0


def test_inference_rates_skip_the_warm_up_batch_and_count_every_later_one():
    sys.path.insert(0, str(ROOT))
    from benchmarks.inference import inference_rates, pooled_rate

    ends = {0: [1.0, 2.0, 3.0], 1: [4.0, 6.0], 2: [7.0]}  # end time of each batch of three sets
    sizes = {0: [256, 256, 100], 1: [256, 50], 2: [10]}
    rates = inference_rates(["train", "val", "train_aug"], ends, sizes)
    assert rates == {"train": {"images": 356, "seconds": 2.0}, "val": {"images": 306, "seconds": 3.0},
                     "train_aug": {"images": 10, "seconds": 1.0}}  # fmt: skip
    assert pooled_rate([rates["train"], rates["val"]]) == round(662 / 5.0, 1) and pooled_rate([]) is None


def test_keras_comparison_needs_the_script_path_as_an_argument(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "benchmark.py"), "--smoke", "--keras", sys.executable]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "--keras-script" in proc.stderr
    proc = subprocess.run([*cmd, "--keras-script", str(tmp_path / "absent.py")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "absent.py: no such file" in proc.stderr
