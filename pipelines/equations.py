"""The course notes' equations, each with the function of this repository that computes it: one list, from which
the app's Math tab and the README's "The math and where it lives" table are both generated.

    python -m pipelines.equations            # print the README table
    python -m pipelines.equations README.md  # rewrite the table between its markers in README.md

A new equation is one :class:`Equation` entry (its test, ``tests/pipelines/test_equations.py``, then asks for a check that
the code really calls the function). Functions are named, not imported ("pipelines.vae:VAE.elbo"), so that the app
renders the tab without importing diffusers; the tests resolve every name.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import schedules


@dataclass(frozen=True)
class Equation:
    """One equation: where it sits, how it reads (LaTeX for the app, plain text for the README) and its code."""

    section: str
    title: str
    latex: str  # display LaTeX
    text: str  # the same in plain Unicode, for the README table
    functions: tuple[str, ...]  # "module:qualname"; the first computes the equation, the others are its parts
    note: str = ""  # one line of Markdown (inline $…$ LaTeX allowed) after the function names
    intro: str = ""  # Markdown before the display equation


EQUATIONS: list[Equation] = [
    Equation(
        "VAE",
        "ELBO",
        r"\mathcal{L} = \mathbb{E}_{q(z\mid x)}[\ln p(x\mid z)] - \mathrm{KL}[q(z\mid x)\,\|\,p(z)], \qquad p(z) = \mathcal{N}(0, I).",
        "ELBO = E_q[ln p(x|z)] − KL[q(z|x) ‖ p(z)], its β-VAE weighting",
        ("pipelines.vae:VAE.elbo",),
        note="the VAE tab shows both terms in nats; β-VAE weighs the KL term by β.",
        intro=r"For any encoder q(z | x), $\ln p(x) = \mathcal{L}(q, \theta) + \mathrm{KL}[q(z\mid x)\,\|\,p(z\mid x)] \ge \mathcal{L}$, with",
    ),
    Equation(
        "VAE",
        "Decoder likelihood",
        r"\ln p(x\mid z) = \sum_d x_d \ln p_d + (1 - x_d)\ln(1 - p_d) \quad\text{or}\quad -\frac{\lVert x - f(z)\rVert^2}{2\sigma^2} + \text{const}",
        "ln p(x|z): Bernoulli or Gaussian decoder",
        ("pipelines.vae:VAE.log_likelihood",),
        note="Bernoulli for binarized digits, Gaussian with a learned σ for intensities.",
    ),
    Equation(
        "VAE",
        "KL to the prior",
        r"\mathrm{KL}[\mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)\,\|\,\mathcal{N}(0, I)] = \tfrac12 \sum_j \left(\mu_j^2 + \sigma_j^2 - \ln \sigma_j^2 - 1\right)",
        "KL[N(μ, σ²) ‖ N(0, I)] = ½ Σ (μ² + σ² − ln σ² − 1)",
        ("pipelines.distributions:DiagonalGaussian.kl",),
        note="the same method gives the KL between any two diagonal Gaussians (the DDPM bound's terms).",
    ),
    Equation(
        "VAE",
        "Reparameterization",
        r"z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I)",
        "reparameterization z = μ + σ·ε",
        ("pipelines.distributions:DiagonalGaussian.sample",),
        note=r"sampling $z \sim q(z\mid x)$ directly would give the encoder no gradient.",
    ),
    Equation(
        "VAE",
        "Latent walks",
        r"\mathrm{slerp}(\hat u, \hat v; t) = \frac{\sin((1-t)\theta)\,\hat u + \sin(t\theta)\,\hat v}{\sin\theta}",
        "spherical interpolation slerp(û, v̂; t) = [sin((1−t)θ)·û + sin(tθ)·v̂]/sin θ",
        ("pipelines.interpolation:slerp", "pipelines.interpolation:lerp"),
        note="the VAE tab walks between two digits' latents.",
    ),
    Equation(
        "Diffusion (DDPM)",
        "Forward process",
        r"z_t = \sqrt{1 - \beta_t}\, z_{t-1} + \sqrt{\beta_t}\,\varepsilon_t, \qquad z_0 = x, \quad \varepsilon_t \sim \mathcal{N}(0, I)",
        "forward chain z_t = √(1−β_t)·z_{t−1} + √β_t·ε",
        ("pipelines.schedules:forward_chain", "pipelines.schedules:make_betas"),
        note="the β schedules of `make_betas`: "
        + ", ".join(entry.label for entry in schedules.BETA_SCHEDULES.values())
        + ".",
        intro="The encoder, with no learning:",
    ),
    Equation(
        "Diffusion (DDPM)",
        "Closed form",
        r"z_t = \sqrt{\bar\alpha_t}\, x + \sqrt{1 - \bar\alpha_t}\,\varepsilon, \qquad \bar\alpha_t = \prod_{s=1}^{t} (1 - \beta_s), \qquad q(z_t\mid x) = \mathcal{N}(\sqrt{\bar\alpha_t}\,x, (1 - \bar\alpha_t) I)",
        "closed form z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε, ᾱ_t = ∏(1−β_s)",
        ("pipelines.schedules:closed_form_sample", "pipelines.schedules:alphas_cumprod"),
        note=r"$\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$ is `signal_to_noise_ratio` (the schedules tab plots its log).",
        intro="Jump straight from x to $z_t$:",
    ),
    Equation(
        "Diffusion (DDPM)",
        "Reverse process",
        r"p(z_{t-1}\mid z_t) = \mathcal{N}(f_t[z_t], \sigma_t^2 I), \qquad f_t = \frac{1}{\sqrt{1 - \beta_t}}\left(z_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\, g_t[z_t]\right) = \tilde\mu_t(z_t, \hat x_0)",
        "reverse mean f_t = (z_t − β_t/√(1−ᾱ_t)·g_t)/√(1−β_t) = μ̃_t(z_t, x̂_0), the posterior mean at x̂_0 = (z_t − √(1−ᾱ_t)·g_t)/√ᾱ_t",
        (
            "pipelines.schedules:posterior_mean",
            "pipelines.schedules:posterior_coefficients",
            "pipelines.schedules:posterior_variance",
            "pipelines.schedules:predict_original_sample",
            "pipelines.scheduling_ddpm:DDPMScheduler.step",
        ),
        note=r"the sampler computes the mean from $\hat x_0 = (z_t - \sqrt{1 - \bar\alpha_t}\, g_t) / \sqrt{\bar\alpha_t}$ so that it can clip $\hat x_0$ first.",
        intro=r"The learned decoder, from $z_T \sim \mathcal{N}(0, I)$:",
    ),
    Equation(
        "Diffusion (DDPM)",
        "DDIM",
        r"z_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\,\hat\varepsilon + \sigma_t \varepsilon, \qquad \sigma_t(\eta) = \eta\sqrt{\tilde\beta_t}",
        "DDIM z_{t'} = √ᾱ_{t'}·x̂_0 + √(1−ᾱ_{t'}−σ_t²)·ε̂ + σ_t·ε, σ_t(η) = η·√β̃_t",
        (
            "pipelines.schedules:ddim_coefficients",
            "pipelines.schedules:ddim_sigma",
            "pipelines.scheduling_ddim:DDIMScheduler.step",
        ),
        note=r"skips steps: $t' < t - 1$; η = 0 is deterministic, η = 1 the DDPM posterior's noise.",
    ),
    Equation(
        "Diffusion (DDPM)",
        "Classifier-free guidance",
        r"\tilde\varepsilon = \varepsilon_\text{uncond} + w\,(\varepsilon_\text{cond} - \varepsilon_\text{uncond})",
        "classifier-free guidance ε̃ = ε_uncond + w·(ε_cond − ε_uncond)",
        ("pipelines.guidance:classifier_free_guidance", "pipelines.guidance:null_class_label"),
        note="the class-conditional model; the unconditional branch is its null label.",
    ),
    Equation(
        "Diffusion (DDPM)",
        "Autoguidance",
        r"\tilde\varepsilon = \varepsilon_\text{guide} + w\,(\varepsilon_\text{main} - \varepsilon_\text{guide})",
        "autoguidance ε̃ = ε_guide + w·(ε_main − ε_guide)",
        ("pipelines.guidance:autoguidance",),
        note="the unconditional models ([Karras et al. 2024](https://arxiv.org/abs/2406.02507)): a smaller, briefly "
        "trained guide model of the same data steers samples away from its half-formed digits.",
    ),
    Equation(
        "Diffusion (DDPM)",
        "Guidance interval",
        r"\text{guide at step } t \iff \sigma_\text{low} < \sigma_t \le \sigma_\text{high}, \qquad \sigma_t = \sqrt{\frac{1 - \bar\alpha_t}{\bar\alpha_t}}",
        "guide only where σ_low < σ_t ≤ σ_high, σ_t = √((1−ᾱ_t)/ᾱ_t) (`guidance_interval`)",
        ("pipelines.guidance:guides_at", "pipelines.guidance:noise_level"),
        note="elsewhere only the main model runs ([Kynkäänniemi et al. 2024](https://arxiv.org/abs/2404.07724)): "
        "guiding at high noise skews which digits come out, at low noise it changes little.",
    ),
    Equation(
        "Diffusion (DDPM)",
        "Loss weighting",
        r"w_t = \frac{\min(\mathrm{SNR}(t), \gamma)}{\mathrm{SNR}(t)}, \qquad \mathrm{SNR}(t) = \frac{\bar\alpha_t}{1 - \bar\alpha_t}",
        "min-SNR-γ loss weights min(SNR(t), γ)/SNR(t), SNR(t) = ᾱ_t/(1−ᾱ_t) (optional)",
        ("pipelines.schedules:min_snr_loss_weight", "pipelines.schedules:signal_to_noise_ratio"),
        note="optional, `--snr_gamma` ([Hang et al. 2023](https://arxiv.org/abs/2303.09556)).",
    ),
    Equation(
        "Diffusion (DDPM)",
        "Loss",
        r"L(\phi) = \sum_i \sum_t \left\lVert g_t\!\left[\sqrt{\bar\alpha_t}\, x_i + \sqrt{1 - \bar\alpha_t}\,\varepsilon_{it}, \phi_t\right] - \varepsilon_{it} \right\rVert^2",
        "loss ‖g_t[√ᾱ_t·x + √(1−ᾱ_t)·ε] − ε‖², regressed in `training/train_ddpm.py`",
        ("pipelines.schedules:diffusion_loss_target",),
        note="the training loop in `training/train_ddpm.py` regresses the UNet on it.",
        intro="The simplified DDPM objective, predict the noise:",
    ),
]

LATEX_DELIMITERS = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
]
README_START = "<!-- equations: generated by `python -m pipelines.equations README.md`; edit pipelines/equations.py -->"
README_END = "<!-- end of equations -->"


def source_file(reference: str) -> str:
    """The repository path of the module a "module:qualname" reference names, e.g. ``pipelines/vae.py``."""
    return reference.split(":")[0].replace(".", "/") + ".py"


def resolve(reference: str):
    """The object a "module:qualname" reference names (imports its module): AttributeError if it does not exist."""
    module, qualname = reference.split(":")
    value = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def code_references(references: tuple[str, ...], template: str = "`{names}` in `{file}`") -> list[str]:
    """The references grouped by file, in order: ["`a`, `b` in `pipelines/x.py`", ...]."""
    by_file: dict[str, list[str]] = {}
    for reference in references:
        by_file.setdefault(source_file(reference), []).append(reference.split(":")[1])
    return [template.format(names="`, `".join(names), file=file) for file, names in by_file.items()]


def math_markdown(space_id: str | None = None) -> str:
    """The Math tab's text; with a Hugging Face ``space_id`` every source file becomes a link to it on the Space."""
    lines, section = ["## The math, and where the code computes it"], None
    for equation in EQUATIONS:
        if equation.section != section:
            section = equation.section
            lines += ["", f"### {section}"]
        intro = f" {equation.intro}" if equation.intro else ""
        note = f" {equation.note[0].upper()}{equation.note[1:]}" if equation.note else ""
        lines += [
            "",
            f"**{equation.title}.**{intro}",
            "",
            f"$${equation.latex}$$",
            "",
            "→ " + "; ".join(code_references(equation.functions)) + "." + note,
        ]
    text = "\n".join(lines) + "\n"
    if not space_id:
        return text
    base = f"https://huggingface.co/spaces/{space_id}/blob/main/"
    return re.sub(r"`((?:pipelines|training)/[a-z_]+\.py)`", lambda m: f"[`{m.group(1)}`]({base}{m.group(1)})", text)


def readme_table() -> str:
    """The README's table of equations and functions, between its markers."""
    rows = ["| equation | function |", "| --- | --- |"]
    for equation in EQUATIONS:
        text = equation.text.replace("|", "\\|")  # a literal | inside a table cell
        rows.append(f"| {text} | {'; '.join(code_references(equation.functions, '`{names}` (`{file}`)'))} |")
    return "\n".join([README_START, *rows, README_END])


def rewrite_readme(path: Path) -> None:
    """Replace the table between the markers of ``path`` with :func:`readme_table`."""
    text = path.read_text()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    path.write_text(text[:start] + readme_table() + text[end:])


if __name__ == "__main__":
    if len(sys.argv) > 1:
        rewrite_readme(Path(sys.argv[1]))
    else:
        print(readme_table())
