"""The playground's API: every named endpoint through gradio_client against `python app.py` on a free port.

The app runs in a subprocess on tiny random models (tests/support/app_server.py) so the tests are fast and need no
trained weights; they check behaviour (shapes, determinism, the maths shown agreeing), not picture quality.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.samplers import SAMPLERS as SAMPLER_TABLE
from pipelines.schedules import BETA_SCHEDULES, schedule_label
from playground.models import SPECS as MODEL_SPECS
from tests.support.app_server import launch_app, make_tiny_models, stop_app

gradio_client = pytest.importorskip("gradio_client")
ENDPOINTS = {
    "/sample",
    "/schedule_plot",
    "/forward_process",
    "/vae_reconstruct",
    "/vae_prior",
    "/vae_interpolate",
    "/vae_traverse",
    "/vae_latent_map",
    "/vae_decode_point",
    "/inpaint",
    "/steps_quality",
    "/walk_seeds",
    "/ddim_invert",
    "/walk_digits",
}
# Every endpoint called with keyword arguments only (small settings; the rest, drawings included, left to defaults).
KEYWORD_CALLS = {
    "/sample": {"model": "latent", "steps": 3, "num_images": 2},
    "/steps_quality": {"model": "latent", "num_images": 1},
    "/schedule_plot": {"names": ["linear"]},
    "/forward_process": {"test_index": 5, "t": 300},
    "/vae_reconstruct": {"test_index": 4},
    "/vae_prior": {"num_images": 3},
    "/vae_interpolate": {"index_b": 7, "num_frames": 4},
    "/vae_traverse": {"test_index": 3, "dim": 2},
    "/vae_latent_map": {},
    "/vae_decode_point": {"pc1": 0.5},
    "/walk_seeds": {"seed_a": 1, "seed_b": 2, "num_frames": 3, "steps": 3},
    "/ddim_invert": {"test_index": 3, "steps": 4},
    "/walk_digits": {"index_a": 1, "index_b": 2, "num_frames": 3, "steps": 3},
    "/inpaint": {"test_index": 9, "steps": 4, "num_variants": 2},
    "/lab_train_diffusion": {"target": "rings", "num_steps": 10, "max_seconds": 1},
    "/lab_reverse_process": {"seed": 2},
    "/lab_forward_and_field": {"t": 3},
    "/lab_target": {"target": "swiss_roll"},
    "/lab_train_vae": {"max_seconds": 1},
    "/lab_stop": {},
}
NEEDS_A_TRAINED_TOY = {"/lab_reverse_process", "/lab_forward_and_field"}  # they show the session's trained model


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("playground")
    models_dir = make_tiny_models(folder / "models")
    process, url = launch_app(models_dir, folder / "app.log")
    try:
        yield gradio_client.Client(url, verbose=False)
    finally:
        stop_app(process)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def gallery_paths(value) -> list[str]:
    return [item["image"] if isinstance(item, dict) else item[0] for item in value]


def editor_value(path) -> dict:
    file = gradio_client.handle_file(str(path))
    return {"background": file, "layers": [], "composite": file, "id": None}


def api_info(client) -> dict:
    return client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_every_action_is_a_named_endpoint(client):
    assert set(api_info(client)) >= ENDPOINTS
    assert set(api_info(client)) == set(KEYWORD_CALLS)  # and each is tried below


def test_every_parameter_is_optional_and_every_output_has_a_readable_ascii_name(client):
    for name, info in api_info(client).items():
        assert all(p["parameter_has_default"] for p in info["parameters"]), name
        outputs = [gradio_client.utils.sanitize_parameter_names(r["label"]) for r in info["returns"]]
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", o) and len(o) <= 20 for o in outputs), (name, outputs)


def documented_api_section() -> str:
    """The API section of docs/app.md: its table of endpoints and its client example."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "app.md").read_text()
    return text.split("## The API", 1)[1].split("\n## ", 1)[0]


def test_the_docs_list_every_endpoint_and_their_client_example_runs(client, capsys):
    section = documented_api_section()
    for name, info in api_info(client).items():
        row = next(line for line in section.splitlines() if line.startswith(f"| `{name}` |"))
        names = [p["parameter_name"] for p in info["parameters"]] or ["—"]
        outputs = [gradio_client.utils.sanitize_parameter_names(r["label"]) for r in info["returns"]]
        assert row.split(" | ")[1:3] == [", ".join(names), ", ".join(outputs) + " |"], row
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    example = example.replace('Client("http://127.0.0.1:7860/")', "client")  # the test's served app
    exec(compile(example, "docs/app.md", "exec"), {"client": client, "Client": lambda url: client})
    printed = capsys.readouterr().out.split()
    assert 0 <= float(printed[0]) <= 1  # the inversion's mean |x̂ − x|, then a scores row and two frame paths


@pytest.mark.parametrize("api_name", sorted(KEYWORD_CALLS))
def test_every_endpoint_answers_a_call_with_keyword_arguments_only(client, api_name):
    if api_name in NEEDS_A_TRAINED_TOY:
        client.predict(num_steps=10, max_seconds=1, api_name="/lab_train_diffusion")
    result = client.predict(**KEYWORD_CALLS[api_name], api_name=api_name)
    outputs = len(api_info(client)[api_name]["returns"])
    assert result is not None and (outputs == 1 or len(result) == outputs)


@pytest.mark.parametrize("model", ["pixel", "latent", "conditional"])
def test_sample_returns_the_digits_first_then_the_trajectory_and_a_gif(client, model):
    job = client.submit(model, "DDIM", 6, 0.0, 1, 5, 2, 3.0, api_name="/sample")
    images, trajectory, status, gif = job.result()
    assert len(job.outputs()) >= 2  # the digits first, then the trajectory and its GIF
    assert len(images) == 5 and all(pixels(p).shape == (28, 28) for p in gallery_paths(images))  # the model's size
    assert Path(trajectory).is_file() and "5 images" in status
    with Image.open(gif) as animation:
        assert animation.n_frames >= 3


def test_the_same_seed_gives_the_same_samples_and_another_seed_different_ones(client):
    def sample(seed):
        images = client.predict("latent", "DDIM", 4, 0.5, seed, 3, 0, 1.0, api_name="/sample")[0]
        return np.stack([pixels(p) for p in gallery_paths(images)])

    first = sample(11)
    np.testing.assert_array_equal(first, sample(11))
    assert not np.array_equal(first, sample(12))


def test_autoguidance_applies_to_models_with_a_guide_and_changes_their_samples(client):
    def sample(model, w):
        images, _, status, _ = client.predict(model, "DDIM", 4, 1.0, 3, 2, 0, 1.0, w, api_name="/sample")
        return np.stack([pixels(p) for p in gallery_paths(images)]), status

    plain, status_plain = sample("pixel", 1.0)
    guided, status = sample("pixel", 3.0)
    assert "autoguidance w = 3" in status and "autoguidance w = 1" in status_plain
    assert not np.array_equal(plain, guided)
    latent, status = sample("latent", 3.0)  # no guide bundled: the weight is ignored, and said so by its absence
    assert "autoguidance" not in status
    np.testing.assert_array_equal(latent, sample("latent", 1.0)[0])


def test_ddpm_sampler_runs_with_many_steps(client):
    images, _, status, _ = client.predict("pixel", "DDPM", 40, 0.0, 0, 2, 0, 1.0, api_name="/sample")
    assert len(images) == 2 and "DDPM (40 steps" in status


def test_schedule_plot_returns_a_figure_for_every_schedule(client):
    plot = client.predict(
        ["linear", "squaredcos_cap_v2", "sigmoid", "scaled_linear"], 500, 1e-4, 0.02, api_name="/schedule_plot"
    )
    assert plot is not None and "plot" in str(plot)


def test_forward_chain_and_closed_form_agree_with_the_theory(client):
    gallery, stats, note = client.predict(
        ["linear", "squaredcos_cap_v2"], 1000, 1e-4, 0.02, 5, None, 300, 0, api_name="/forward_process"
    )
    assert len(gallery) == 1 + 2 * 2  # the digit, then chain and closed form per schedule
    headers, rows = stats["headers"], stats["data"]
    assert [row[0] for row in rows] == ["linear", "cosine"]
    for row in rows:
        r = dict(zip(headers, row))
        for kind in ("chain", "closed form"):
            assert abs(r[f"mean: {kind}"] - r["mean: theory √ᾱ_t·x̄"]) < 0.03
            assert abs(r[f"std: {kind}"] - r["std: theory √(1−ᾱ_t)"]) < 0.05
    assert "test digit #5" in note


def test_forward_process_uses_an_uploaded_digit(client, tmp_path):
    drawing = np.full((140, 140), 255, np.uint8)
    drawing[30:110, 60:80] = 0  # a dark "1" on white paper
    Image.fromarray(drawing).save(tmp_path / "one.png")
    _, _, note = client.predict(
        ["linear"], 100, 1e-4, 0.02, 0, editor_value(tmp_path / "one.png"), 10, 0, api_name="/forward_process"
    )
    assert "your drawing" in note


def test_vae_reconstruction_reports_elbo_as_reconstruction_minus_kl(client):
    original, reconstruction, text, terms = client.predict(4, None, 0, 1.0, api_name="/vae_reconstruct")
    assert pixels(original).shape == pixels(reconstruction).shape == (112, 112)
    assert terms["kl"] >= 0
    assert terms["elbo"] == pytest.approx(terms["reconstruction"] - terms["kl"], abs=0.02)
    assert "nats" in text


def test_vae_reconstruction_under_a_beta_vae_reports_its_weighted_objective(client):
    _, _, text, terms = client.predict(4, None, 0, 4.0, api_name="/vae_reconstruct")
    assert terms["beta_objective"] == pytest.approx(terms["reconstruction"] - 4.0 * terms["kl"], abs=0.05)
    assert "β = 4" in text
    _, _, _, plain = client.predict(4, None, 0, 1.0, api_name="/vae_reconstruct")
    assert plain["elbo"] != terms["elbo"]  # another model: the β-VAE's own weights


def test_vae_prior_returns_the_requested_number_of_samples(client):
    assert len(client.predict(7, 3, 1.0, api_name="/vae_prior")) == 7
    assert len(client.predict(2, 3, 0.25, api_name="/vae_prior")) == 2


def test_vae_linear_and_slerp_walks_share_their_endpoints(client):
    linear, spherical, gif = client.predict(0, 60, 6, api_name="/vae_interpolate")
    a, b = pixels(linear), pixels(spherical)
    assert a.shape == b.shape and a.shape[1] > 5 * a.shape[0]  # a strip of 6 frames
    tile = a.shape[0]
    np.testing.assert_allclose(a[:, :tile], b[:, :tile], atol=1)  # first frame: μ(a) in both
    np.testing.assert_allclose(a[:, -tile:], b[:, -tile:], atol=1)  # last frame: μ(b) in both
    with Image.open(gif) as animation:
        assert animation.n_frames == 2 * 6 - 2


def test_vae_traversal_has_one_frame_per_value(client):
    strip = pixels(client.predict(0, None, 3, 2.0, 5, api_name="/vae_traverse"))
    assert strip.shape[1] // strip.shape[0] in (4, 5)  # 5 square tiles side by side (plus padding)


def test_vae_latent_map_and_decoding_a_point(client):
    latent_map = Image.open(client.predict(api_name="/vae_latent_map"))
    assert latent_map.size == (480, 480)
    decoded, redrawn = client.predict(0.5, -0.25, api_name="/vae_decode_point")
    assert pixels(decoded).shape == (168, 168)
    assert Image.open(redrawn).size == (480, 480)


def test_inpaint_keeps_the_known_pixels_exactly(client):
    from playground.models import test_digits

    digit = np.round(test_digits().images[9, 0].numpy() * 255)
    masked, filled = client.predict(9, None, "left half", "DDIM", 5, 2, 2, 0, api_name="/inpaint")
    assert pixels(masked).shape == (168, 168)
    assert len(filled) == 2
    for path in gallery_paths(filled):
        result = pixels(path)[::4, ::4].astype(float)  # shown at 4×
        np.testing.assert_allclose(result[:, 14:], digit[:, 14:], atol=1)


def test_the_seed_morph_starts_and_ends_at_the_sample_tabs_deterministic_samples(client):
    frames, gif, summary = client.predict(
        model="latent", seed_a=4, seed_b=9, num_frames=5, steps=3, api_name="/walk_seeds"
    )
    assert len(frames) == 5 and "seed 4" in summary
    for seed, frame in ((4, frames[0]), (9, frames[-1])):
        sampled = client.predict(
            model="latent", sampler="DDIM", steps=3, eta=0.0, seed=seed, num_images=1, api_name="/sample"
        )[0]
        frame_pixels = pixels(gallery_paths([frame])[0])[::4, ::4]  # walk frames come enlarged 4×, samples at 28 px
        difference = np.abs(frame_pixels.astype(int) - pixels(gallery_paths(sampled)[0]))
        assert difference.mean() < 2  # the same z_T and DDIM (the Sample tab may run the UNet in bf16)
    with Image.open(gif) as animation:
        assert animation.n_frames == 2 * 5 - 2


@pytest.mark.parametrize("model", ["latent", "pixel"])
def test_ddim_inversion_returns_its_frames_and_the_reconstruction_error(client, model):
    frames, gif, errors, summary = client.predict(model=model, test_index=12, steps=6, api_name="/ddim_invert")
    from playground.models import test_digits

    digit = np.round(test_digits().images[12, 0].numpy() * 255)
    first, last = (pixels(p)[::4, ::4].astype(float) for p in gallery_paths([frames[0], frames[-1]]))
    np.testing.assert_allclose(first, digit, atol=1)  # x itself
    assert np.abs(last - digit).mean() / 255 == pytest.approx(errors["mean_abs_error"], abs=0.01)  # x̂ and its error
    assert errors["steps"] == 6 and 0 <= errors["mean_abs_error"] <= errors["max_abs_error"] <= 1
    assert ("vae_mean_abs_error" in errors) == (model == "latent")
    assert len(frames) >= 4 and "test digit #12" in summary
    with Image.open(gif) as animation:
        assert animation.n_frames == len(frames)


def test_walk_between_two_digits_puts_ddim_and_vae_frames_side_by_side(client):
    ddim, vae, gif, summary = client.predict(index_a=0, index_b=60, num_frames=4, steps=3, api_name="/walk_digits")
    assert len(ddim) == len(vae) == 4 and "#0" in summary and "#60" in summary
    with Image.open(gif) as animation:
        assert animation.n_frames == 2 * 4 - 2 and animation.width > 1.8 * animation.height  # two tiles side by side
    _, reconstruction, _, _ = client.predict(test_index=0, api_name="/vae_reconstruct")  # decode(μ(a))
    np.testing.assert_allclose(pixels(gallery_paths(vae)[0]), pixels(reconstruction), atol=1)  # the VAE walk's start


def test_steps_quality_scores_every_sampler_at_every_step_count(client):
    from playground.models import SAMPLERS
    from playground.steps_grid import STEP_COUNTS

    cells, table = client.predict(model="latent", num_images=2, seed=3, api_name="/steps_quality")
    assert len(cells) == len(SAMPLERS) * len(STEP_COUNTS)
    rows = table["data"]
    assert [(r[0], r[1]) for r in rows] == [(s, n) for s in SAMPLERS for n in STEP_COUNTS]
    assert all(r[2] in (0.0, 50.0, 100.0) for r in rows)  # 0, 1 or 2 of 2 digits confident
    assert all(f"{r[2]:.0f}% confident" in c["caption"] for r, c in zip(rows, cells))


BAD_INPUTS = [
    ("/sample", ("latent", "DDIM", 500, 0.0, 0, 4, 3, 1.0), "steps (DDIM) must lie in [1, 200]"),
    ("/sample", ("latent", "DDIM", 10, 0.0, 0, 100, 3, 1.0), "64"),
    ("/sample", ("nope", "DDIM", 10, 0.0, 0, 4, 3, 1.0), "nope"),
    ("/sample", ("latent", "DDIM", 10, 0.0, -1, 4, 3, 1.0), "-1"),
    ("/sample", ("latent", "DDIM", 2.5, 0.0, 0, 4, 3, 1.0), "whole number"),
    ("/schedule_plot", ([], 100, 1e-4, 0.02), "at least one noise schedule"),
    ("/schedule_plot", (["linear"], 100, 0.5, 0.02), "β_start must be smaller than β_end"),
    ("/forward_process", (["linear"], 100, 1e-4, 0.02, 0, None, 101, 0), "t must lie in [1, 100]"),
    ("/forward_process", (["linear"], 100, 1e-4, 0.02, 900, None, 10, 0), "499"),
    ("/vae_reconstruct", (0, None, 2**40, 1.0), "greater than maximum value 2147483647"),
    ("/vae_reconstruct", (0, None, 0, 2.0), "2.0"),
    ("/vae_prior", (0, 0, 1.0), "0"),
    ("/vae_interpolate", (0, 1, 1), "2"),
    ("/vae_traverse", (0, None, 99, 2.0, 5), "greater than maximum value 15"),
    ("/vae_decode_point", (1e9, 0.0), "PC 1"),
    ("/inpaint", (3, None, "drawn", "DDIM", 10, 1, 1, 0), "paint over the digit"),
    ("/inpaint", (3, None, "left half", "DDPM", 500, 3, 1, 0), "at most 1000"),
    ("/walk_seeds", ("conditional", 0, 1, 4, 3), "not in the list of choices: ['latent', 'pixel']"),
    ("/walk_seeds", ("latent", 0, 1, 1, 3), "less than minimum value 2"),
    ("/ddim_invert", ("pixel", 3, None, 0), "less than minimum value 1"),
    ("/ddim_invert", ("latent", 900, None, 3), "499"),
    ("/walk_digits", ("latent", 0, 1, 4, 500), "greater than maximum value 200"),
    ("/steps_quality", ("latent", 99, 0), "16"),
    ("/steps_quality", ("nope", 2, 0), "nope"),
]


@pytest.mark.parametrize(
    "api_name,args,message", BAD_INPUTS, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(BAD_INPUTS)]
)
def test_bad_input_gets_a_clear_error_and_the_app_keeps_serving(client, api_name, args, message):
    with pytest.raises(Exception) as error:
        client.predict(*args, api_name=api_name)
    assert message.lower() in str(error.value).lower()
    assert len(client.predict(1, 0, 1.0, api_name="/vae_prior")) == 1  # still serving


@pytest.mark.slow  # starts a second app
def test_a_missing_model_gives_a_clear_message(tmp_path):
    models_dir = make_tiny_models(tmp_path / "models", keys=("pixel",))
    process, url = launch_app(models_dir, tmp_path / "app.log")
    try:
        c = gradio_client.Client(url, verbose=False)
        with pytest.raises(Exception, match="is not bundled"):
            c.predict("latent", "DDIM", 5, 0.0, 0, 2, 0, 1.0, api_name="/sample")
        with pytest.raises(Exception, match="is not bundled"):
            c.predict(2, 0, 1.0, api_name="/vae_prior")
        assert len(c.predict("pixel", "DDIM", 3, 0.0, 0, 2, 0, 1.0, api_name="/sample")[0]) == 2
    finally:
        stop_app(process)


# Every entry of the registries works end to end through the app's API: a new sampler, β schedule or bundled model
# is one table entry, and this test is what shows the page serves it.
@pytest.mark.parametrize("sampler", [s.label for s in SAMPLER_TABLE.values()])
@pytest.mark.parametrize("model", ["pixel", "latent"])
def test_every_registered_sampler_samples_through_the_api(client, sampler, model):
    images, _, status, _ = client.predict(
        model=model, sampler=sampler, steps=3, num_images=2, seed=4, api_name="/sample"
    )
    assert len(images) == 2 and f"with {sampler} (3 steps" in status


@pytest.mark.parametrize("schedule", list(BETA_SCHEDULES))
def test_every_registered_beta_schedule_runs_the_forward_process(client, schedule):
    gallery, stats, _ = client.predict(names=[schedule], test_index=2, t=100, api_name="/forward_process")
    rows = stats["data"] if isinstance(stats, dict) else stats
    assert len(gallery) == 3 and [row[0] for row in rows] == [schedule_label(schedule)]


@pytest.mark.parametrize("key", [k for k, spec in MODEL_SPECS.items() if spec.kind != "vae"])
def test_every_registered_diffusion_model_samples_through_the_api(client, key):
    images, _, status, _ = client.predict(model=key, steps=2, num_images=1, api_name="/sample")
    assert len(images) == 1 and MODEL_SPECS[key].label in status


@pytest.mark.parametrize("beta", sorted(spec.beta for spec in MODEL_SPECS.values() if spec.kind == "vae"))
def test_every_registered_vae_reconstructs_through_the_api(client, beta):
    _, _, _, terms = client.predict(test_index=4, beta=beta, api_name="/vae_reconstruct")
    assert terms["elbo"] == pytest.approx(terms["reconstruction"] - terms["kl"], abs=0.05)
