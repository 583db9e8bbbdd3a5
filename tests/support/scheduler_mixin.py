"""Agreement with diffusers, shared by every from-scratch scheduler's tests.

A scheduler's test class inherits :class:`SchedulerAgreementMixin` and names its class and diffusers'.
Every test then runs over a config grid: all combinations of beta schedule, prediction type, timestep
spacing and x̂_0 range handling (clip, wider clip, dynamic thresholding, none), with the other options
(zero-terminal-SNR rescale, T, steps_offset, beta range, the scheduler's ``variants`` such as DDPM's variance
types or DDIM's η settings) spread over those rows so that every pair of option values meets in some row.
Sampling loops run each row for several step counts, comparing every ``step`` output.

NaN: with ``rescale_betas_zero_snr`` the last training step has ᾱ_T = 0. Spacings that visit it then give
x̂_0 = (z_t − ε̂)/0 = ±inf under ε-prediction (NaN a few steps later unless clipped), and DDIM's
√(1 − ᾱ_{t'} − σ_t²) is the root of a round-off negative at η = 1; both libraries produce inf/NaN there.
Outputs are compared with ``equal_nan``, and a non-finite value is only accepted in a loop that visits T − 1
of a rescaled schedule.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math

import numpy as np
import pytest
import torch

from pipelines.schedules import BETA_SCHEDULES, PREDICTION_TYPES
from pipelines.scheduling_utils import TIMESTEP_SPACINGS

from .models import tiny_unet

SHAPE = (2, 3, 6, 6)
STEP_COUNTS = (1, 9, 40)  # sampling-loop lengths; all ≤ the smallest T of the grid

X0_RANGES = {  # how x̂_0 is kept in range
    "clip": {"clip_sample": True},
    "clip2": {"clip_sample": True, "clip_sample_range": 2.0},
    "thresh": {"thresholding": True, "dynamic_thresholding_ratio": 0.95, "sample_max_value": 2.0},
    "noclip": {"clip_sample": False},
}
BETA_RANGES = {"b1": {"beta_start": 0.0001, "beta_end": 0.02}, "b2": {"beta_start": 0.00085, "beta_end": 0.012}}
CORE_KEYS = ("beta_schedule", "prediction_type", "timestep_spacing", "x0_range")  # all combinations
SECONDARY_AXES = {  # spread over the rows
    "rescale_betas_zero_snr": (False, True),
    "num_train_timesteps": (1000, 100, 50),
    "steps_offset": (0, 1),
    "beta_range": tuple(BETA_RANGES),
}


def _pairs(row: dict) -> set:
    items = sorted((k, repr(v)) for k, v in row.items())
    return set(itertools.combinations(items, 2))


def covering_grid(core: dict[str, tuple], secondary: dict[str, tuple]) -> list[dict]:
    """Every combination of the core axes; each row's secondary values picked greedily so that as many
    not-yet-seen pairs of values (of any two axes) as possible appear, then the least used values."""
    candidates = [dict(zip(secondary, values)) for values in itertools.product(*secondary.values())]
    covered: set = set()
    uses: collections.Counter = collections.Counter()
    rows = []
    for values in itertools.product(*core.values()):
        base = dict(zip(core, values))
        best = max(candidates, key=lambda c: (len(_pairs({**base, **c}) - covered), -sum(uses[i] for i in c.items())))
        rows.append({**base, **best})
        covered |= _pairs(rows[-1])
        uses.update(best.items())
    return rows


def public_config(config) -> dict:
    """A config without its bookkeeping keys (``_class_name``, ``_diffusers_version``, ...)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def row_id(row: dict) -> str:
    """A readable test id, e.g. ``linear-epsilon-leading-clip-T1000-b1-zsnr-off1``."""
    parts = [str(row[k]) for k in CORE_KEYS] + [f"T{row['num_train_timesteps']}", row["beta_range"]]
    parts += ["zsnr"] if row["rescale_betas_zero_snr"] else []
    parts += [f"off{row['steps_offset']}"] if row["steps_offset"] else []
    parts += [f"{k}={v}" for k, v in row.items() if k not in CORE_KEYS and k not in SECONDARY_AXES and k != "variant"]
    parts.append(row["variant"])
    return "-".join(parts)


def fake_model(sample: torch.Tensor, timestep, learned_variance: bool = False) -> torch.Tensor:
    """A deterministic stand-in for the network: smooth in z_t, bounded, changing with t."""
    out = torch.tanh(0.9 * sample.roll(1, dims=-1) + math.sin(float(timestep) / 97.0))
    if learned_variance:  # the second half of the channels: a variance (learned) or an interpolation weight
        out = torch.cat([out, torch.sigmoid(sample)], dim=1)
    return out


def assert_same(ours: torch.Tensor, theirs: torch.Tensor, allow_nan: bool) -> None:
    """Equal to float32 round-off; NaN/inf only where the config explains it (see the module docstring)."""
    if not allow_nan:
        assert torch.isfinite(ours).all(), "non-finite values outside the documented zero-SNR case"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5, equal_nan=True)


class SchedulerAgreementMixin:
    """Inherit and set the class attributes below; every test compares ours with diffusers'."""

    ours_class: type
    theirs_class: type
    pipeline_class: type  # a diffusers pipeline the scheduler must work in
    pipeline_kwargs: dict = {}
    upstream_beta_schedules: tuple[str, ...] = tuple(BETA_SCHEDULES)  # the ones diffusers' class implements
    extra_axes: dict[str, tuple] = {}  # scheduler-specific constructor options spread over the grid
    variants: dict[str, tuple[dict, dict]] = {"default": ({}, {})}  # name → (constructor options, step options)
    supports_upstream_custom_timesteps = True

    # ---- parametrisation -------------------------------------------------------------------------------

    @classmethod
    def axes(cls) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """(core axes: all combinations, secondary axes: spread pairwise) of the grid."""
        core = dict(
            zip(CORE_KEYS, (cls.upstream_beta_schedules, PREDICTION_TYPES, TIMESTEP_SPACINGS, tuple(X0_RANGES)))
        )
        return core, {**SECONDARY_AXES, **cls.extra_axes, "variant": tuple(cls.variants)}

    @classmethod
    @functools.cache
    def grid(cls) -> list[dict]:
        return covering_grid(*cls.axes())

    def scheduler_kwargs(self, row: dict) -> dict:
        """Constructor arguments of a grid row: its presets and its variant's options expanded."""
        kwargs = {k: v for k, v in row.items() if k not in ("x0_range", "beta_range", "variant")}
        preset = {**X0_RANGES[row["x0_range"]], **BETA_RANGES[row["beta_range"]], **self.variants[row["variant"]][0]}
        return {**kwargs, **preset}

    def pytest_generate_tests(self, metafunc):
        if "row" in metafunc.fixturenames:
            rows = self.grid()
            metafunc.parametrize("row", rows, ids=[row_id(r) for r in rows])

    # ---- helpers ---------------------------------------------------------------------------------------

    def make_pair(self, kwargs: dict):
        ours = self.ours_class(**kwargs)
        return ours, self.theirs_class.from_config(ours.config)

    def step_kwargs(self, step_options: dict, generator: torch.Generator) -> dict:
        return {**step_options, "generator": generator}

    def is_learned_variance(self, scheduler) -> bool:
        return getattr(scheduler.config, "variance_type", "").startswith("learned")

    def sample_loop(self, scheduler, step_options: dict, seed: int, **set_timesteps_kwargs):
        """Every (prev_sample, pred_original_sample) of a sampling loop with the fake model."""
        generator = torch.Generator().manual_seed(seed)
        sample = torch.randn(SHAPE, generator=generator)
        scheduler.set_timesteps(**set_timesteps_kwargs)
        outputs = []
        for t in scheduler.timesteps:
            model_output = fake_model(sample, t, self.is_learned_variance(scheduler))
            out = scheduler.step(model_output, t, sample, **self.step_kwargs(step_options, generator))
            outputs.append((out.prev_sample, out.pred_original_sample))
            sample = out.prev_sample
        return outputs

    def assert_loops_agree(self, ours_outputs, theirs_outputs, allow_nan: bool) -> None:
        """Every prev_sample and pred_original_sample of the two loops agree (compared in one go)."""
        assert len(ours_outputs) == len(theirs_outputs) > 0
        assert_same(
            torch.stack([torch.stack(o) for o in ours_outputs]),
            torch.stack([torch.stack(o) for o in theirs_outputs]),
            allow_nan,
        )

    # ---- agreement over the grid -----------------------------------------------------------------------

    def test_grid_meets_every_pair_of_option_values(self):
        axes = {**self.axes()[0], **self.axes()[1]}
        wanted = {
            ((a, repr(x)), (b, repr(y)))
            for a, b in itertools.combinations(sorted(axes), 2)
            for x in axes[a]
            for y in axes[b]
        }
        assert wanted <= set().union(*map(_pairs, self.grid()))

    def test_from_config_both_ways_keeps_config_and_schedule(self, row):
        kwargs = self.scheduler_kwargs(row)
        theirs = self.theirs_class(**kwargs)
        ours = self.ours_class.from_config(theirs.config)
        back = self.theirs_class.from_config(ours.config)
        assert public_config(ours.config) == public_config(theirs.config) == public_config(back.config)
        for key, value in kwargs.items():
            assert ours.config[key] == value
        torch.testing.assert_close(back.alphas_cumprod, ours.alphas_cumprod, rtol=0, atol=0)

    def test_betas_and_alphas_cumprod_match(self, row):
        ours, theirs = self.make_pair(self.scheduler_kwargs(row))
        torch.testing.assert_close(ours.betas, theirs.betas, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(ours.alphas, theirs.alphas, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(ours.alphas_cumprod, theirs.alphas_cumprod, rtol=1e-6, atol=1e-9)

    def test_timesteps_match(self, row):
        ours, theirs = self.make_pair(self.scheduler_kwargs(row))
        T = ours.config.num_train_timesteps
        offset = ours.config.steps_offset
        for n in sorted({1, 2, 3, 7, 9, 10, 40, T // 3, T - 1, T}):
            if offset and ours.config.timestep_spacing == "leading" and n == T:
                continue  # ⌊T/n⌋ = 1: the offset pushes the first step past T − 1 in both libraries
            ours.set_timesteps(n)
            theirs.set_timesteps(n)
            assert ours.timesteps.dtype == theirs.timesteps.dtype
            assert torch.equal(ours.timesteps, theirs.timesteps), n

    def test_add_noise_and_velocity_match(self, row):
        ours, theirs = self.make_pair(self.scheduler_kwargs(row))
        T = ours.config.num_train_timesteps
        g = torch.Generator().manual_seed(1)
        x = torch.randn(4, 3, 5, 5, generator=g)
        noise = torch.randn(4, 3, 5, 5, generator=g)
        timesteps = torch.tensor([0, 1, T // 2, T - 1])
        assert_same(ours.add_noise(x, noise, timesteps), theirs.add_noise(x, noise, timesteps), allow_nan=False)
        assert_same(ours.get_velocity(x, noise, timesteps), theirs.get_velocity(x, noise, timesteps), allow_nan=False)

    def test_sampling_loop_matches_diffusers(self, row):
        ours, theirs = self.make_pair(self.scheduler_kwargs(row))
        step_options = self.variants[row["variant"]][1]
        for n in STEP_COUNTS:
            a = self.sample_loop(ours, step_options, seed=n, num_inference_steps=n)
            b = self.sample_loop(theirs, step_options, seed=n, num_inference_steps=n)
            visits_zero_snr = row["rescale_betas_zero_snr"] and len(ours) - 1 in ours.timesteps.tolist()
            self.assert_loops_agree(a, b, allow_nan=visits_zero_snr)

    # ---- single configurations -------------------------------------------------------------------------

    def test_custom_timesteps_loop_matches_diffusers(self):
        ours, theirs = self.make_pair({"clip_sample": False})
        step_options = next(iter(self.variants.values()))[1]
        if self.supports_upstream_custom_timesteps:
            custom = [999, 800, 501, 123, 40, 5, 0]
            b = self.sample_loop(theirs, step_options, seed=0, timesteps=custom)
        else:  # diffusers' class has no custom timesteps: compare with the same steps from leading spacing
            b = self.sample_loop(theirs, step_options, seed=0, num_inference_steps=8)
            custom = theirs.timesteps.tolist()
        a = self.sample_loop(ours, step_options, seed=0, timesteps=custom)
        assert ours.timesteps.tolist() == custom
        self.assert_loops_agree(a, b, allow_nan=False)

    def test_step_tuple_output_matches_dataclass(self):
        scheduler = self.ours_class()
        scheduler.set_timesteps(10)
        sample = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
        model_output = fake_model(sample, 500)
        t = scheduler.timesteps[3]
        out = scheduler.step(model_output, t, sample, generator=torch.Generator().manual_seed(5))
        prev, x0 = scheduler.step(
            model_output, int(t), sample, generator=torch.Generator().manual_seed(5), return_dict=False
        )
        assert torch.equal(prev, out.prev_sample) and torch.equal(x0, out.pred_original_sample)

    def test_public_attributes_match(self):
        ours, theirs = self.make_pair({"num_train_timesteps": 123})
        assert ours.order == theirs.order
        assert ours.init_noise_sigma == theirs.init_noise_sigma
        assert len(ours) == len(theirs) == 123
        assert sorted(ours._compatibles) == sorted(theirs._compatibles)
        assert torch.equal(ours.timesteps, theirs.timesteps)  # before set_timesteps: all T steps, descending
        x = torch.randn(SHAPE)
        assert ours.scale_model_input(x, 5) is x

    def test_save_pretrained_round_trip(self, tmp_path):
        kwargs = self.scheduler_kwargs(self.grid()[-1])
        kwargs["trained_betas"] = torch.linspace(1e-3, 0.05, kwargs["num_train_timesteps"]).tolist()
        ours = self.ours_class(**kwargs)
        ours.save_pretrained(tmp_path / "ours")
        reloaded = self.ours_class.from_pretrained(tmp_path / "ours")
        theirs = self.theirs_class.from_pretrained(tmp_path / "ours")
        assert public_config(reloaded.config) == public_config(ours.config)
        assert reloaded.config["_class_name"] == ours.config["_class_name"] == self.theirs_class.__name__
        torch.testing.assert_close(reloaded.alphas_cumprod, ours.alphas_cumprod, rtol=0, atol=0)
        torch.testing.assert_close(theirs.alphas_cumprod, ours.alphas_cumprod, rtol=1e-6, atol=1e-9)
        theirs.save_pretrained(tmp_path / "theirs")
        from_theirs = self.ours_class.from_pretrained(tmp_path / "theirs")
        assert public_config(from_theirs.config) == public_config(ours.config)

    def test_inside_diffusers_pipeline_gives_same_images(self):
        unet = tiny_unet()
        images = []
        for scheduler in self.make_pair({}):
            pipe = self.pipeline_class(unet=unet, scheduler=scheduler)
            pipe.scheduler = scheduler  # DDIMPipeline converts its scheduler to diffusers' class: undo that
            pipe.set_progress_bar_config(disable=True)
            assert type(pipe.scheduler) is type(scheduler)
            out = pipe(
                batch_size=2,
                generator=torch.Generator().manual_seed(0),
                num_inference_steps=10,
                output_type="np",
                **self.pipeline_kwargs,
            )
            images.append(out.images)
        assert images[0].shape == (2, 8, 8, 1)
        np.testing.assert_allclose(images[0], images[1], rtol=0, atol=1e-6)

    # ---- bad arguments ---------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "argument, make",
        [
            ("beta_schedule", lambda cls: cls(beta_schedule="cosine")),
            ("prediction_type", lambda cls: cls(prediction_type="noise")),
            ("timestep_spacing", lambda cls: cls(timestep_spacing="karras").set_timesteps(10)),
            ("num_inference_steps", lambda cls: cls(num_train_timesteps=100).set_timesteps(101)),
            ("num_inference_steps", lambda cls: cls().set_timesteps(0)),
            ("num_inference_steps", lambda cls: cls().set_timesteps(-5)),
            ("num_inference_steps", lambda cls: cls().set_timesteps(2.5)),
            ("num_inference_steps", lambda cls: cls().set_timesteps(10, timesteps=[9, 5, 0])),
            ("timesteps", lambda cls: cls().set_timesteps(timesteps=[10, 50, 0])),
            ("timesteps", lambda cls: cls().set_timesteps(timesteps=[10, 10, 0])),
            ("timesteps", lambda cls: cls().set_timesteps(timesteps=[1000, 500])),
            ("timesteps", lambda cls: cls().set_timesteps(timesteps=[])),
        ],
    )
    def test_bad_arguments_raise_value_error_naming_them(self, argument, make):
        with pytest.raises(ValueError, match=argument):
            make(self.ours_class)

    def test_unsupported_beta_schedule_lists_the_supported_ones(self):
        with pytest.raises(ValueError, match="beta_schedule must be one of") as error:
            self.ours_class(beta_schedule="exponential")
        assert all(repr(name) in str(error.value) for name in BETA_SCHEDULES)

    def test_step_at_a_timestep_outside_custom_schedule_raises(self):
        scheduler = self.ours_class()
        scheduler.set_timesteps(timesteps=[900, 500, 100])
        sample = torch.randn(SHAPE)
        with pytest.raises(ValueError, match="timestep 400"):
            scheduler.step(fake_model(sample, 400), 400, sample)
