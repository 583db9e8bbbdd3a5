"""The Math tab: the course notes' equations, each next to the function of this repository that computes it."""

import os
import re

MATH = r"""
## The math, and where the code computes it

### VAE
**ELBO.** For any encoder q(z | x), $\ln p(x) = \mathcal{L}(q, \theta) + \mathrm{KL}[q(z\mid x)\,\|\,p(z\mid x)] \ge \mathcal{L}$, with

$$\mathcal{L} = \mathbb{E}_{q(z\mid x)}[\ln p(x\mid z)] - \mathrm{KL}[q(z\mid x)\,\|\,p(z)], \qquad p(z) = \mathcal{N}(0, I).$$

→ `VAE.elbo` in `pipelines/vae.py` (the VAE tab shows both terms in nats); $\ln p(x\mid z)$ is `VAE.log_likelihood`
(Bernoulli: $\sum_d x_d \ln p_d + (1 - x_d)\ln(1 - p_d)$; Gaussian: $-\lVert x - f(z)\rVert^2 / 2\sigma^2 + \text{const}$).

**KL to the prior** for $q = \mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)$:

$$\mathrm{KL}[q\,\|\,\mathcal{N}(0, I)] = \tfrac12 \sum_j \left(\mu_j^2 + \sigma_j^2 - \ln \sigma_j^2 - 1\right)$$

→ `DiagonalGaussian.kl` in `pipelines/distributions.py`.

**Reparameterization.** Sampling $z \sim q(z\mid x)$ directly gives no gradient to the encoder; instead

$$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I)$$

→ `DiagonalGaussian.sample` in `pipelines/distributions.py`. Latent walks: `lerp` and `slerp` in `pipelines/pipeline_vae.py`,
$\mathrm{slerp}(\hat u, \hat v; t) = \frac{\sin((1-t)\theta)\,\hat u + \sin(t\theta)\,\hat v}{\sin\theta}$.

### Diffusion (DDPM)
**Forward process** (the encoder, no learning):

$$z_t = \sqrt{1 - \beta_t}\, z_{t-1} + \sqrt{\beta_t}\,\varepsilon_t, \qquad z_0 = x, \quad \varepsilon_t \sim \mathcal{N}(0, I)$$

→ `forward_chain` in `pipelines/schedules.py`; the β schedules are `make_betas` (linear, scaled linear, sigmoid) and `cosine_betas`.

**Closed form** (jump straight from x to $z_t$):

$$z_t = \sqrt{\bar\alpha_t}\, x + \sqrt{1 - \bar\alpha_t}\,\varepsilon, \qquad \bar\alpha_t = \prod_{s=1}^{t} (1 - \beta_s), \qquad q(z_t\mid x) = \mathcal{N}(\sqrt{\bar\alpha_t}\,x, (1 - \bar\alpha_t) I)$$

→ `closed_form_sample` and `alphas_cumprod` in `pipelines/schedules.py`; $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$ is
`signal_to_noise_ratio` (the schedules tab plots its log).

**Reverse process** (the learned decoder), from $z_T \sim \mathcal{N}(0, I)$:

$$p(z_{t-1}\mid z_t) = \mathcal{N}(f_t[z_t], \sigma_t^2 I), \qquad f_t = \frac{1}{\sqrt{1 - \beta_t}}\left(z_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\, g_t[z_t]\right)$$

→ `reverse_mean_from_noise` in `pipelines/schedules.py`; the samplers compute the same mean as the posterior mean
$\tilde\mu_t(z_t, \hat x_0)$ (`posterior_coefficients`, `posterior_variance`) with
$\hat x_0 = (z_t - \sqrt{1 - \bar\alpha_t}\, g_t) / \sqrt{\bar\alpha_t}$ (`predict_original_sample`) — see
`DDPMScheduler.step` in `pipelines/scheduling_ddpm.py`. DDIM (`pipelines/scheduling_ddim.py`, `ddim_coefficients`) jumps
$z_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\,\hat\varepsilon + \sigma_t \varepsilon$ with
$\sigma_t(\eta) = \eta\sqrt{\tilde\beta_t}$.

**Classifier-free guidance** (the class-conditional model): $\tilde\varepsilon = \varepsilon_\text{uncond} + w\,(\varepsilon_\text{cond} - \varepsilon_\text{uncond})$
→ `classifier_free_guidance` in `pipelines/guidance.py`.

**Autoguidance** (the unconditional models, [Karras et al. 2024](https://arxiv.org/abs/2406.02507)): the same extrapolation
with a smaller or shorter-trained *guide* model of the same data (the latent model's guide is its own weights a third
of the way through its training) in place of the unconditional branch,
$\tilde\varepsilon = \varepsilon_\text{guide} + w\,(\varepsilon_\text{main} - \varepsilon_\text{guide})$; it steers samples away from
the half-formed digits the guide makes more often than the main model → `autoguidance` in `pipelines/guidance.py`.
The app guides only the steps whose noise level $\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$ lies in $(0.28, 5.42]$
([Kynkäänniemi et al. 2024](https://arxiv.org/abs/2404.07724)): guiding at high noise mostly skews which digits come up
→ `noise_level`, `guides_at` in `pipelines/guidance.py`.

**Loss weighting** (optional, `--snr_gamma`): min-SNR-γ ([Hang et al. 2023](https://arxiv.org/abs/2303.09556)) weighs each
$t$ by $\min(\mathrm{SNR}(t), \gamma)/\mathrm{SNR}(t)$, $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$ → `min_snr_loss_weight` in `pipelines/schedules.py`.

**Loss** (the simplified DDPM objective: predict the noise):

$$L(\phi) = \sum_i \sum_t \left\lVert g_t\!\left[\sqrt{\bar\alpha_t}\, x_i + \sqrt{1 - \bar\alpha_t}\,\varepsilon_{it}, \phi_t\right] - \varepsilon_{it} \right\rVert^2$$

→ `diffusion_loss_target` in `pipelines/schedules.py` (the training loop in `training/train_ddpm.py` regresses the UNet on it).
"""

LATEX_DELIMITERS = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
]


def math_markdown() -> str:
    """The Math tab's text; on a Hugging Face Space (``SPACE_ID`` set) each source file becomes a link to it."""
    space = os.environ.get("SPACE_ID")
    if not space:
        return MATH
    base = f"https://huggingface.co/spaces/{space}/blob/main/"
    return re.sub(r"`((?:pipelines|training)/[a-z_]+\.py)`", lambda m: f"[`{m.group(1)}`]({base}{m.group(1)})", MATH)
