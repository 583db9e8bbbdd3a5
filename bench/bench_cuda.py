"""The GPU check, one prepared script: every bundled pipeline sampled on CUDA with its weights loaded in fp32, fp16
and bf16 (``from_pretrained(..., torch_dtype=...)``, as a diffusers user loads them), each at the settings the app
samples with and beside the fp32 run's images; then 50 training steps of a pixel DDPM and of a VAE with
``--mixed_precision fp16`` and ``bf16``. One line per case: ok or the error, seconds, and how far the images are
from fp32's. Skips (exit 0) where no GPU is present.

    python -m bench.bench_cuda [--models-dir models] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def sampling_kwargs(pipe) -> dict:
    """The app's settings for a pipeline (pipelines/defaults.py): its scheduler, steps and guidance; 16 digits 0–9
    in turn for a class-conditional one."""
    from pipelines.defaults import DEFAULT_STEPS, app_sampling_kwargs, app_scheduler

    if not hasattr(pipe, "unet"):
        return {}
    pipe.scheduler = app_scheduler(pipe)
    kwargs = {"num_inference_steps": DEFAULT_STEPS, **app_sampling_kwargs(pipe)}
    if "guidance_scale" in kwargs:
        kwargs["class_labels"] = torch.arange(16) % 10
    return kwargs


def sample_case(
    folder: Path, dtype: str, reference: torch.Tensor | None, device: str = "cuda"
) -> tuple[dict, torch.Tensor | None]:
    from training.evaluate import load_pipeline_class

    row = {"model": folder.name, "dtype": dtype}
    try:
        pipe = load_pipeline_class(folder).from_pretrained(folder, torch_dtype=DTYPES[dtype]).to(device)
        pipe.set_progress_bar_config(disable=True)
        kwargs = sampling_kwargs(pipe)
        generator = torch.Generator(device).manual_seed(0)
        pipe(batch_size=16, generator=torch.Generator(device).manual_seed(1), output_type="pt", **kwargs)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        images = pipe(batch_size=16, generator=generator, output_type="pt", **kwargs).images.float().cpu()
        synchronize(device)
        row.update(status="ok", seconds=round(time.perf_counter() - start, 4), mean=round(images.mean().item(), 4))
        row["finite"] = bool(torch.isfinite(images).all())
        if reference is not None:
            row["max_abs_diff_vs_fp32"] = round((images - reference).abs().max().item(), 4)
        return row, images
    except Exception as error:  # the check reports every case, failed ones included
        row.update(status="failed", error=f"{type(error).__name__}: {error}"[:300])
        traceback.print_exc(limit=3)
        return row, None


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def training_case(kind: str, precision: str, out: Path) -> dict:
    """50 steps of ``python -m training.train_<kind> --mixed_precision <precision>`` on the GPU (tiny settings)."""
    args = [sys.executable, "-m", f"training.train_{kind}", "--output_dir", str(out / f"{kind}-{precision}")]
    args += ["--max_steps", "50", "--mixed_precision", precision, "--batch_size", "64", "--sample_every", "0"]
    args += ["--checkpoint_every", "50", "--log_every", "10"]
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    row = {"train": kind, "mixed_precision": precision, "seconds": round(time.perf_counter() - start, 1)}
    metrics = out / f"{kind}-{precision}" / "metrics.jsonl"
    losses = [json.loads(line).get("loss") for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    row.update(status="ok" if result.returncode == 0 else "failed", losses=[round(v, 4) for v in losses if v])
    if result.returncode:
        row["error"] = result.stderr.strip().splitlines()[-1][:300] if result.stderr.strip() else ""
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "models"))
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="cuda-check-"))
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script's own code paths")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return []
    name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"device: {name}, torch {torch.__version__}", flush=True)
    rows = []
    for folder in sorted(p for p in Path(args.models_dir).iterdir() if (p / "model_index.json").is_file()):
        reference = None
        for dtype in DTYPES:
            row, images = sample_case(folder, dtype, reference, args.device)
            reference = images if dtype == "fp32" else reference
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    for kind in () if args.skip_training else ("ddpm", "vae"):
        for precision in ("fp16", "bf16"):
            rows.append(training_case(kind, precision, out))
            print(json.dumps(rows[-1]), flush=True)
    (out / "cuda-check.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
