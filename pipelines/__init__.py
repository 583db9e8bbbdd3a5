"""From-scratch DDPM/DDIM schedulers, a from-scratch VAE, and diffusers-style pipelines.

The names below are imported on first use (PEP 562, https://peps.python.org/pep-0562/): most of their modules
import diffusers, which takes seconds, so ``import pipelines`` or ``import pipelines.schedules`` stays cheap and
``pipelines.DDPMPipeline`` or ``from pipelines import VAE`` imports what it needs then (pipelines/deferred.py).
"""

from .deferred import import_deferred

# name → the submodule that defines it
_SOURCES = {
    "DDIMScheduler": "scheduling_ddim",
    "DDIMSchedulerOutput": "scheduling_ddim",
    "DDPMScheduler": "scheduling_ddpm",
    "DDPMSchedulerOutput": "scheduling_ddpm",
    "VAE": "vae",
    "VAEEncoderOutput": "vae",
    "VAEDecoderOutput": "vae",
    "ELBOOutput": "vae",
    "DiagonalGaussian": "distributions",
    "VAEPipeline": "pipeline_vae",
    "VAEPipelineOutput": "pipeline_vae",
    "lerp": "interpolation",
    "slerp": "interpolation",
    "principal_directions": "pipeline_vae",
    "DDPMPipeline": "pipeline_ddpm",
    "LatentDDPMPipeline": "pipeline_latent_ddpm",
    "DDPMInpaintPipeline": "pipeline_inpaint",
    "SamplingPipelineOutput": "sampling_loop",
    "TrajectoryPoint": "sampling_loop",
    "classifier_free_guidance": "guidance",
    "autoguidance": "guidance",
    "check_pipeline_folder": "loading",
    "SafeFromPretrainedMixin": "pretrained",
}
__all__ = list(_SOURCES)


def __getattr__(name: str):
    """``pipelines.<name>`` for a name of ``__all__``: imported from its submodule on first use, then kept."""
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_deferred(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
