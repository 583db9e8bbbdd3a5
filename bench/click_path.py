"""What stands between a Sample click and the UNet: the project's frames and the threads a click crosses.

Runs the /sample endpoint as Gradio does (``cancellable(sample_stream)`` awaited on an event loop) on the bundled
latent model and records, at the first UNet call of the sampling itself (a timing pass of the precision choice is
noted, not counted), the stack's frames in this project's files and the thread the UNet runs in.

    python -m bench.click_path
"""

from __future__ import annotations

import asyncio
import os
import threading
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from diffusers import UNet2DModel

    from playground.cancel import cancellable
    from playground.tabs import sample as sample_tab

    seen: dict = {"threads": set()}
    forward = UNet2DModel.forward

    def probe(*args, **kwargs):
        seen["threads"].add(threading.current_thread().name)
        if "frames" not in seen:
            ours = [
                f for f in traceback.extract_stack() if f.filename.startswith(str(ROOT)) and ".venv" not in f.filename
            ]
            if any(f.filename.endswith("precision.py") for f in ours):
                seen["timing_pass"] = True
            else:
                seen["frames"] = [f"{os.path.relpath(f.filename, ROOT)}:{f.name}" for f in ours[:-1]]  # not probe
        return forward(*args, **kwargs)

    UNet2DModel.forward = probe

    async def click():
        seen["threads"].add(threading.current_thread().name)
        async for _ in cancellable(sample_tab.sample_stream)("latent", "DDIM", 12, 0.0, 0, 4, 0, 1.0, 1.0):
            pass

    asyncio.run(click())
    print(f"{len(seen['frames'])} project frames: " + " → ".join(seen["frames"]))
    print(f"threads: {len(seen['threads'])} ({', '.join(sorted(seen['threads']))})")
    print(f"a hidden timing pass before sampling: {'yes' if seen.get('timing_pass') else 'no'}")


if __name__ == "__main__":
    main()
