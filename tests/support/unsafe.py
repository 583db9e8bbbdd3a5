"""A pickle that proves it ran: what the loaders must refuse unread."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


class WritesMarkerWhenUnpickled:
    """Unpickling this creates a file: proof that a loader ran code from the pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_pickle(path: Path, marker: Path, how: str) -> None:
    if how == "torch.save":
        torch.save({"state_dict": WritesMarkerWhenUnpickled(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(WritesMarkerWhenUnpickled(marker)))
