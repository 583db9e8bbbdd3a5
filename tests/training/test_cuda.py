"""On a GPU (skipped where there is none): every task of the training loop trains, evaluates and exports with
``--mixed_precision`` fp16 and bf16, its held-out data moved to the model's device. bench/bench_cuda.py runs the
full GPU check (every bundled pipeline in fp32/fp16/bf16 too)."""

from __future__ import annotations

import json

import pytest
import torch

from training import classifier, train_ddpm, train_vae

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TINY = ["--max_steps", "6", "--batch_size", "16", "--sample_every", "0", "--checkpoint_every", "6", "--log_every", "2"]
TASKS = {
    "ddpm": (train_ddpm.main, ["--data", "sklearn-digits", "--image_size", "8", "--block_out_channels", "8,16",
                               "--attention_levels", "", "--layers_per_block", "1", "--norm_num_groups", "4"]),
    "vae": (train_vae.main, ["--eval_every", "3"]),
    "classifier": (classifier.main, ["--lr_warmup_steps", "2"]),
}  # fmt: skip


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_task_trains_evaluates_and_exports_on_the_gpu(task, precision, tmp_path):
    main, args = TASKS[task]
    main(["--output_dir", str(tmp_path), "--mixed_precision", precision, *TINY, *args])
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records and all(torch.isfinite(torch.tensor(r["loss"])) for r in records if "loss" in r)
    assert (tmp_path / "model_index.json").is_file() or (tmp_path / "config.json").is_file()
