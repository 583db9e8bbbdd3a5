"""pipelines/equations.py: every listed function exists and is the one the code calls; the README table and the
Math tab are generated from the list."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pipelines import equations
from pipelines.equations import EQUATIONS
from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_vae import VAEPipeline
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from tests.support.models import tiny_unet, tiny_vae

ROOT = Path(__file__).resolve().parents[2]


def images(seed: int = 1) -> torch.Tensor:
    return torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def batch_draws():
    """The random numbers of one global batch of two images, as the training loop hands them to a task."""
    from training.batches import BatchDraws

    return BatchDraws(torch.Generator().manual_seed(0), global_size=2)


def vae_training_loss() -> torch.Tensor:
    from training.train_vae import VAETask

    task = SimpleNamespace(config=SimpleNamespace(binarize="none", kl_warmup_steps=0, beta=1.0))
    return VAETask.loss(task, tiny_vae(), images(), None, batch_draws(), step=1)


def elbo_terms(name: str) -> torch.Tensor:
    return getattr(tiny_vae().elbo(images(), generator=torch.Generator().manual_seed(0)), name)


def slerp_walk() -> torch.Tensor:
    pipe = VAEPipeline(tiny_vae())
    return pipe.interpolate(images(1)[:1], images(2)[:1], num_frames=3, method="slerp", output_type="pt").images


def forward_tab_chain() -> torch.Tensor:
    """The schedules tab's chain (its cache bypassed, so a patched forward_chain is seen)."""
    from playground.tabs.schedules import chain_parts

    return chain_parts.__wrapped__("linear", 20, 1e-3, 0.05, 0).first_noise


def scheduler_step(scheduler, **options) -> torch.Tensor:
    scheduler.set_timesteps(10)
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = scheduler.timesteps[3]
    return scheduler.step(torch.tanh(z), t, z, generator=torch.Generator().manual_seed(1), **options).prev_sample


def pipeline_sample(unet, guide_unet=None, **kwargs) -> torch.Tensor:
    pipe = DDPMPipeline(unet, DDPMScheduler(num_train_timesteps=100), guide_unet=guide_unet)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    return pipe(batch_size=2, num_inference_steps=2, generator=generator, output_type="pt", **kwargs)[0]


def ddpm_training_loss(snr_gamma: float) -> torch.Tensor:
    from training.train_ddpm import DDPMTask

    config = SimpleNamespace(num_train_timesteps=100, num_classes=0, prediction_type="epsilon", snr_gamma=snr_gamma)
    task = SimpleNamespace(vae=None, config=config, scheduler=DDPMScheduler(num_train_timesteps=100))
    return DDPMTask.loss(task, tiny_unet(), images(), None, batch_draws(), step=1)


# title → the code that must call the equation's (first) function, returning a tensor that depends on it
CALLERS = {
    "ELBO": vae_training_loss,
    "Decoder likelihood": lambda: elbo_terms("reconstruction"),
    "KL to the prior": lambda: elbo_terms("kl"),
    "Reparameterization": lambda: elbo_terms("reconstruction"),
    "Latent walks": slerp_walk,
    "Forward process": forward_tab_chain,
    "Closed form": lambda: DDPMScheduler().add_noise(images(), images(2), torch.tensor([10, 700])),
    "Reverse process": lambda: scheduler_step(DDPMScheduler(clip_sample=False)),
    "DDIM": lambda: scheduler_step(DDIMScheduler(clip_sample=False), eta=0.5),
    "Classifier-free guidance": lambda: pipeline_sample(tiny_unet(4), class_labels=[1, 2], guidance_scale=3.0),
    "Autoguidance": lambda: pipeline_sample(tiny_unet(), guide_unet=tiny_unet(seed=1), autoguidance_scale=2.0),
    "Guidance interval": lambda: pipeline_sample(
        tiny_unet(), guide_unet=tiny_unet(seed=1), autoguidance_scale=2.0, guidance_interval=(0.0, 1.0)
    ),
    "Loss weighting": lambda: ddpm_training_loss(snr_gamma=5.0),
    "Loss": lambda: ddpm_training_loss(snr_gamma=0.0),
}


def perturbed(value):
    """The same output shifted a little: tensors + 0.25, a yes/no answer flipped, containers and output dataclasses
    field by field."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, torch.Tensor):
        return value + 0.25
    if dataclasses.is_dataclass(value):
        return type(value)(**{f.name: perturbed(getattr(value, f.name)) for f in dataclasses.fields(value)})
    if isinstance(value, (tuple, list)):
        return type(value)(perturbed(v) for v in value)
    return value


def owner_and_name(reference: str) -> tuple[object, str]:
    """Where the function a "module:qualname" reference names is looked up at call time: its module or class."""
    module, qualname = reference.split(":")
    *owners, name = qualname.split(".")
    return equations.resolve(f"{module}:{'.'.join(owners)}") if owners else importlib.import_module(module), name


def test_every_equation_has_a_caller_check():
    assert [e.title for e in EQUATIONS] == list(CALLERS)


@pytest.mark.parametrize("equation", EQUATIONS, ids=[e.title for e in EQUATIONS])
def test_every_listed_function_is_defined_in_the_file_named(equation):
    for reference in equation.functions:
        function = equations.resolve(reference)
        module = importlib.import_module(reference.split(":")[0])
        assert function.__module__ == module.__name__ and function.__qualname__ == reference.split(":")[1]
        assert Path(module.__file__) == ROOT / equations.source_file(reference)


@pytest.mark.parametrize("equation", EQUATIONS, ids=[e.title for e in EQUATIONS])
def test_the_code_calls_the_listed_function(equation, monkeypatch):
    """Shifting the function's output changes what the code computes, so the code goes through that function."""
    with torch.no_grad():
        before = CALLERS[equation.title]()
    function = equations.resolve(equation.functions[0])
    calls = []

    def shifted(*args, **kwargs):
        calls.append(1)
        return perturbed(function(*args, **kwargs))

    monkeypatch.setattr(*owner_and_name(equation.functions[0]), shifted)
    with torch.no_grad():
        after = CALLERS[equation.title]()
    assert calls, f"{function.__qualname__} was not called"
    assert not torch.allclose(before, after)


def test_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert equations.readme_table() in readme, "regenerate it: python -m pipelines.equations README.md"


def test_math_tab_shows_every_equation_and_links_files_on_a_space():
    text = equations.math_markdown()
    for equation in EQUATIONS:
        assert f"**{equation.title}.**" in text and f"$${equation.latex}$$" in text
        assert all(f"`{reference.split(':')[1]}`" in text for reference in equation.functions)
    linked = equations.math_markdown(space_id="someone/playground")
    url = "https://huggingface.co/spaces/someone/playground/blob/main/pipelines/schedules.py"
    assert linked.count(f"[`pipelines/schedules.py`]({url})") == text.count("`pipelines/schedules.py`") > 0
    assert equations.LATEX_DELIMITERS[0] == {"left": "$$", "right": "$$", "display": True}


def math_tab_text() -> str:
    """The Markdown the app's Math tab shows, read from the built component."""
    import gradio as gr

    from playground.tabs import math

    with gr.Blocks() as demo:
        math.build(demo)
    (markdown,) = [block for block in demo.blocks.values() if isinstance(block, gr.Markdown)]
    return markdown.value


def test_every_function_the_math_tab_names_exists_in_the_file_it_names():
    text = math_tab_text()
    assert text.strip() == equations.math_markdown().strip()
    named = re.findall(r"((?:`[\w.]+`(?:, )?)+) in `([\w/]+)\.py`", text)
    assert len(named) >= len(EQUATIONS)
    for names, file in named:
        module = importlib.import_module(file.replace("/", "."))
        for name in re.findall(r"`([\w.]+)`", names):
            assert equations.resolve(f"{module.__name__}:{name}"), f"the Math tab names {name} in {file}.py"


def test_a_function_that_does_not_exist_fails_to_resolve():
    with pytest.raises(AttributeError):
        equations.resolve("pipelines.schedules:reverse_mean_from_noise")


def test_rewriting_the_readme_replaces_only_the_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{equations.README_START}\nold table\n{equations.README_END}\nafter\n")
    equations.rewrite_readme(readme)
    assert readme.read_text() == f"before\n{equations.readme_table()}\nafter\n"
