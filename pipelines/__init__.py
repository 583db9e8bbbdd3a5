"""From-scratch DDPM/DDIM schedulers, a from-scratch VAE, and diffusers-style pipelines."""

from .distributions import DiagonalGaussian
from .guidance import autoguidance, classifier_free_guidance
from .loading import SafeFromPretrainedMixin, check_pipeline_folder
from .pipeline_ddpm import DDPMPipeline
from .pipeline_inpaint import DDPMInpaintPipeline
from .pipeline_latent_ddpm import LatentDDPMPipeline
from .pipeline_vae import VAEPipeline, VAEPipelineOutput, lerp, principal_directions, slerp
from .sampling_loop import SamplingPipelineOutput, TrajectoryPoint
from .scheduling_ddim import DDIMScheduler, DDIMSchedulerOutput
from .scheduling_ddpm import DDPMScheduler, DDPMSchedulerOutput
from .vae import VAE, ELBOOutput, VAEDecoderOutput, VAEEncoderOutput

__all__ = [
    "DDIMScheduler",
    "DDIMSchedulerOutput",
    "DDPMScheduler",
    "DDPMSchedulerOutput",
    "VAE",
    "VAEEncoderOutput",
    "VAEDecoderOutput",
    "ELBOOutput",
    "DiagonalGaussian",
    "VAEPipeline",
    "VAEPipelineOutput",
    "lerp",
    "slerp",
    "principal_directions",
    "DDPMPipeline",
    "LatentDDPMPipeline",
    "DDPMInpaintPipeline",
    "SamplingPipelineOutput",
    "TrajectoryPoint",
    "classifier_free_guidance",
    "autoguidance",
    "check_pipeline_folder",
    "SafeFromPretrainedMixin",
]
