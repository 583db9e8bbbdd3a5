"""Runs training.train_ddpm (under torchrun, by tests/training/test_distributed.py) recording, per process, a hash of
every image row it trains on into $PROBE_DIR/rank-<RANK>.json; with $PROBE_KILL_AT, process 0 kills itself
with SIGKILL at that step (a crash in the middle of a multi-process run)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from training import train_ddpm


def main() -> None:
    rank, rows = int(os.environ.get("RANK", "0")), {}
    kill_at = int(os.environ.get("PROBE_KILL_AT", "-1"))
    original = train_ddpm.DDPMTask.loss

    def loss(self, model, images, labels, draws, step):
        if step == kill_at and rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        rows.setdefault(step, []).extend(hashlib.sha1(row.cpu().numpy().tobytes()).hexdigest() for row in images)
        return original(self, model, images, labels, draws, step)

    train_ddpm.DDPMTask.loss = loss
    train_ddpm.main(sys.argv[1:])
    if os.environ.get("PROBE_DIR"):
        (Path(os.environ["PROBE_DIR"]) / f"rank-{rank}.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
