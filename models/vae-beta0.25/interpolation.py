"""Paths between two latent points: the straight line and the great circle (pure tensor math, no diffusers).

The VAE pipeline walks its latent space with them, and the app's walks use them before any model is loaded.
"""

from __future__ import annotations

import torch


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line from ``a`` to ``b`` at each fraction in ``t``: shape (len(t), *a.shape)."""
    t = t.to(a).view(-1, *([1] * a.ndim))
    return a + t * (b - a)  # (1 − t)·a + t·b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Great-circle path between the directions of ``a`` and ``b``, its radius moving linearly from |a| to |b|.

    Endpoints are exact and equal-norm endpoints keep their norm all the way; for (anti)parallel or zero
    endpoints, where no unique great circle exists, it falls back to :func:`lerp`.
    """
    norm_a, norm_b = a.norm(), b.norm()
    if min(norm_a, norm_b) < eps:
        return lerp(a, b, t)
    u, v = a / norm_a, b / norm_b
    theta = 2 * torch.atan2((u - v).norm(), (u + v).norm())  # angle between û and v̂ (accurate near 0 and π)
    if torch.sin(theta) < eps:
        return lerp(a, b, t)
    s = t.to(a).view(-1, *([1] * a.ndim))
    # slerp(û, v̂; t) = [sin((1 − t)θ)·û + sin(tθ)·v̂] / sin θ   (Shoemake 1985)
    direction = (torch.sin((1 - s) * theta) * u + torch.sin(s * theta) * v) / torch.sin(theta)
    radius = lerp(norm_a, norm_b, t).view(-1, *([1] * a.ndim))
    return radius * direction
