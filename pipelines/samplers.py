"""The samplers the app and the evaluation offer, as one table: key, label, scheduler class and step limits.

Every entry is built from a trained model's saved (DDPM) scheduler config with :func:`make_scheduler`, so it
samples the noise schedule the model was trained with. Beside our own DDPM and DDIM, the table holds the diffusers
schedulers that sample the bundled models well at few steps (their scores: docs/pipelines.md#the-samplers).
SDE-DPM-Solver++ (the second-order solver of the stochastic reverse equation) is the app's default, for the reason
given in ``pipelines/defaults.py``.

Adding a sampler is one :class:`Sampler` entry here (and, for the app, nothing else). An entry names its scheduler
class by import path, imported when a scheduler is made: the table itself imports no diffusers, so the app's page
(labels, step limits) builds without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .checks import check_number
from .deferred import import_deferred


@dataclass(frozen=True)
class Sampler:
    """One sampler: how to build its scheduler and which step counts make sense for it."""

    key: str  # lower case, as the evaluation CLI takes it ("ddim")
    label: str  # as the app shows it ("DDIM")
    scheduler_path: str  # "module:Class" of its scheduler (".module" is one of ours), see scheduler_class
    default_steps: int
    max_steps: int  # the most steps the app offers (never more than the model was trained with)
    takes_eta: bool  # whether the scheduler's step takes DDIM's η
    config_overrides: Mapping = field(default_factory=lambda: MappingProxyType({}))  # on top of the saved config

    @property
    def scheduler_name(self) -> str:
        """The scheduler's class name; ours (DDPM, DDIM) are named as diffusers' equivalents."""
        return self.scheduler_path.split(":")[1]

    @property
    def from_config_keywords(self) -> str:
        """The config overrides as ``from_config`` keywords (", algorithm_type='sde-dpmsolver++', ...")."""
        return "".join(f", {key}={value!r}" for key, value in self.config_overrides.items())

    @property
    def scheduler_class(self) -> type:
        """The scheduler class, imported on first use (diffusers takes seconds to import)."""
        module, name = self.scheduler_path.split(":")
        return getattr(import_deferred(module, __package__), name)


SAMPLERS: dict[str, Sampler] = {
    s.key: s
    for s in (
        Sampler("ddim", "DDIM", ".scheduling_ddim:DDIMScheduler", default_steps=25, max_steps=200, takes_eta=True),
        Sampler("ddpm", "DDPM", ".scheduling_ddpm:DDPMScheduler", default_steps=100, max_steps=1000, takes_eta=False),
        Sampler(
            "dpmsolver++",
            "DPM-Solver++",
            "diffusers:DPMSolverMultistepScheduler",
            default_steps=10,
            max_steps=100,
            takes_eta=False,
            config_overrides=MappingProxyType({"algorithm_type": "dpmsolver++", "solver_order": 2}),
        ),
        Sampler(
            "sde-dpmsolver++",
            "SDE-DPM-Solver++",
            "diffusers:DPMSolverMultistepScheduler",
            default_steps=12,
            max_steps=100,
            takes_eta=False,
            # the stochastic variant (Lu et al. 2022, https://arxiv.org/abs/2211.01095, §5): fresh noise each step
            config_overrides=MappingProxyType({"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
        ),
        Sampler(
            "unipc", "UniPC", "diffusers:UniPCMultistepScheduler", default_steps=10, max_steps=100, takes_eta=False
        ),
        Sampler(
            "euler_a",
            "Euler ancestral",
            "diffusers:EulerAncestralDiscreteScheduler",
            default_steps=20,
            max_steps=200,
            takes_eta=False,
        ),
    )
}


def resolve_sampler(name: str) -> Sampler:
    """The sampler named by its key or its label, in any case ("ddim", "DDIM", "dpm-solver++")."""
    wanted = str(name).strip().casefold()
    for sampler in SAMPLERS.values():
        if wanted in (sampler.key.casefold(), sampler.label.casefold()):
            return sampler
    choices = [s.label for s in SAMPLERS.values()]
    raise ValueError(f"sampler must be one of {choices} (or their keys {list(SAMPLERS)}), got {name!r}.")


def make_scheduler(config, name: str, **overrides):
    """A fresh scheduler of sampler ``name`` from a trained model's scheduler ``config``.

    ``overrides`` go on top of the sampler's own config overrides; like diffusers' ``from_config``, a scheduler
    ignores options it does not take (so ``clip_sample=False`` may be passed for every sampler of a latent model).
    """
    sampler = resolve_sampler(name)
    return sampler.scheduler_class.from_config(config, **{**sampler.config_overrides, **overrides})


def step_cap(name: str, num_train_timesteps: int) -> int:
    """The most steps sampler ``name`` takes on a model trained with ``num_train_timesteps`` steps: its table's
    ``max_steps``, never more than the model was trained with."""
    return min(resolve_sampler(name).max_steps, int(num_train_timesteps))


def check_steps(name: str, steps, num_train_timesteps: int) -> int:
    """``steps`` as an int in [1, :func:`step_cap`], else a ValueError naming it (whole floats, as sliders send)."""
    label = resolve_sampler(name).label
    return check_number(f"steps ({label})", steps, 1, step_cap(name, num_train_timesteps), integer=True)


def sampler_of(scheduler_config: Mapping) -> str | None:
    """The key of the sampler a scheduler config is (its class, and the sampler's own config overrides), or None."""
    name = scheduler_config.get("_class_name")
    for sampler in SAMPLERS.values():
        overrides = sampler.config_overrides.items()
        if sampler.scheduler_name == name and all(scheduler_config.get(k) == v for k, v in overrides):
            return sampler.key
    return None


def stored_sampling(folder) -> dict:
    """How the saved pipeline in ``folder`` samples best, read from its files without loading it (for a model card,
    or a page before the model loads): ``{"sampler": key or None, **model_index.json's "sampling"}``; {} where it
    stores none (pipelines/sampling_settings.py)."""
    from pathlib import Path

    from .folder_checks import SCHEDULER_CONFIG, read_json

    folder = Path(folder)
    settings = read_json(folder / "model_index.json").get("sampling")
    if not settings:
        return {}
    return {"sampler": sampler_of(read_json(folder / "scheduler" / SCHEDULER_CONFIG)), **settings}
