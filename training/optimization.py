"""The optimizer, the LR schedule and the EMA of the one training loop, built from a TrainConfig."""

from __future__ import annotations

import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from .config import TrainConfig


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay, Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101)."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        weight_decay=cfg.weight_decay,
    )


def _one_cycle(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """torch's one-cycle policy (Smith & Topor 2017, https://arxiv.org/abs/1708.07120): the LR rises to
    learning_rate over lr_warmup_steps and anneals to ~0; Adam's β₁ cycles inversely between 0.95 and 0.85."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.learning_rate, total_steps=cfg.max_steps, pct_start=cfg.lr_warmup_steps / cfg.max_steps
    )


def _diffusers_schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return get_scheduler(
        cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps, num_training_steps=cfg.max_steps
    )


LR_SCHEDULERS = {
    "one_cycle": _one_cycle,
    **dict.fromkeys(
        ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"),
        _diffusers_schedule,
    ),
}


def build_lr_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The LR schedule over max_steps optimizer steps, from the LR_SCHEDULERS table."""
    return LR_SCHEDULERS[cfg.lr_scheduler](cfg, optimizer)


def make_ema(cfg: TrainConfig, model: torch.nn.Module) -> EMAModel | None:
    """diffusers' EMAModel with the decay warm-up ema_warmup names (see TrainConfig); None when ema_decay is 0."""
    if cfg.ema_decay == 0:
        return None
    return EMAModel(
        model.parameters(),
        decay=cfg.ema_decay,
        use_ema_warmup=cfg.ema_warmup == "power",
        inv_gamma=cfg.ema_inv_gamma,
        power=cfg.ema_power,
    )
