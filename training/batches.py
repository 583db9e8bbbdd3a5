"""Batches and their random numbers as pure functions of (seed, batch number), split across processes.

:class:`BatchSampler` gives each process its rows of every global batch; :class:`BatchDraws` gives the
random numbers (noise, time steps, dropout, augmentation) of the global batch, of which each process keeps
its rows. A run is therefore the same on any number of processes, and resuming needs no random state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class BatchSampler:
    """Batches as a pure function of (seed, batch number): resuming at step k replays exactly what an
    uninterrupted run would have seen, with no random state to save. Each epoch is a fresh permutation;
    with several processes each takes its own slice of the global batch (``rows``)."""

    def __init__(self, num_examples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size <= 0 or batch_size % world_size:
            raise ValueError(
                f"batch_size ({batch_size}) must be positive and divisible by the number of processes ({world_size})."
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size}) (world_size {world_size}).")
        if num_examples < batch_size:
            raise ValueError(f"the data holds {num_examples} examples, fewer than batch_size={batch_size}.")
        self.n, self.batch_size, self.seed = num_examples, batch_size, seed
        per_rank, self.num_processes = batch_size // world_size, world_size
        self.rows = range(rank * per_rank, (rank + 1) * per_rank)  # this process's rows of every global batch
        self.per_epoch = num_examples // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, batch_number: int) -> torch.Tensor:
        epoch, i = divmod(batch_number, self.per_epoch)
        if epoch != self._epoch:
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            self._epoch = epoch
        batch = self._perm[i * self.batch_size : (i + 1) * self.batch_size]
        return batch[self.rows.start : self.rows.stop]

    def generator(self, batch_number: int) -> torch.Generator:
        """The generator of this global batch's noise, time steps, label dropout and augmentation: the same on
        every process (each keeps its rows of what it draws, see :class:`BatchDraws`)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + batch_number)

    def draws(self, batch_number: int, device: torch.device | str = "cpu") -> BatchDraws:
        return BatchDraws(self.generator(batch_number), self.batch_size, self.rows, device, self.num_processes)


class BatchDraws:
    """The random numbers of one global batch, the same whatever the number of processes.

    Every process draws the numbers of the whole global batch (rows first) from the batch's generator and
    keeps its own ``rows``, so N processes together draw exactly what one process holding the whole batch
    would: their training matches a single process's to round-off, and a checkpoint resumes on any N.
    ``generator`` also serves draws shared by the whole batch (the same on every process). Numbers are drawn
    on the CPU and handed over on ``device``."""

    def __init__(
        self,
        generator: torch.Generator,
        global_size: int,
        rows: range | None = None,
        device: torch.device | str = "cpu",
        num_processes: int = 1,
    ):
        self.generator, self.global_size, self.device = generator, global_size, device
        self.rows = range(global_size) if rows is None else rows
        self.num_processes = num_processes

    def _mine(self, values: torch.Tensor) -> torch.Tensor:
        return values[self.rows.start : self.rows.stop].to(self.device)

    def randn(self, *shape: int) -> torch.Tensor:
        return self._mine(torch.randn(self.global_size, *shape, generator=self.generator))

    def rand(self, *shape: int) -> torch.Tensor:
        return self._mine(torch.rand(self.global_size, *shape, generator=self.generator))

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        return self._mine(torch.randint(0, high, (self.global_size, *shape), generator=self.generator))

    def row_generators(self) -> list[torch.Generator]:
        """One generator per row, for library calls that take a list of them (diffusers' ``randn_tensor``)."""
        return [torch.Generator().manual_seed(int(seed)) for seed in self.randint(2**62)]

    def head(self, size: int) -> BatchDraws:
        """The draws of the global batch's first ``size`` rows (those of them this process holds)."""
        rows = range(min(self.rows.start, size), min(self.rows.stop, size))
        return BatchDraws(self.generator, size, rows, self.device, self.num_processes)

    def global_mean(self, per_row: torch.Tensor) -> torch.Tensor:
        """This process's share of the mean of ``per_row`` over the global batch: the processes' gradients are
        averaged, so Σ_mine · num_processes / global_size (with one process, the plain mean)."""
        return per_row.sum() * self.num_processes / self.global_size

    @property
    def global_rows(self) -> torch.Tensor:
        """This process's rows' positions in the global batch."""
        return torch.arange(self.rows.start, self.rows.stop, device=self.device)


def as_draws(randomness: torch.Generator | BatchDraws, batch_size: int) -> BatchDraws:
    """A plain generator is the draws of a batch held by one process."""
    return (
        randomness
        if isinstance(randomness, BatchDraws)
        else BatchDraws(randomness, batch_size, device=randomness.device)
    )


def random_shift(images: torch.Tensor, max_shift: int, randomness: torch.Generator | BatchDraws) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [−max_shift, max_shift] (zero fill)."""
    if max_shift <= 0:
        return images
    draws = as_draws(randomness, len(images))
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dx, dy = draws.randint(2 * max_shift + 1), draws.randint(2 * max_shift + 1)
    rows = (
        (dy[:, None] + torch.arange(h, device=images.device)[None])
        .view(n, 1, h, 1)
        .expand(n, images.shape[1], h, w + 2 * max_shift)
    )
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w, device=images.device)[None]).view(n, 1, 1, w).expand(n, images.shape[1], h, w)
    return out.gather(3, cols)
