"""The colour data set and its figure: sklearn-patches' bands never share a pixel column, and the Fréchet distance in
the fixed patch feature space ranks held-out real patches far closer to the training patches than noise or blur."""

from __future__ import annotations

import torch

from training.data import load_data
from training.patch_quality import controls, held_out_anchor, side_by_side


def test_sklearn_patches_are_deterministic_colour_bands_that_share_no_column():
    sizes = {split: len(load_data("sklearn-patches", split)) for split in ("train", "val", "test", "train+val", "all")}
    assert sizes == {"train": 1350, "val": 250, "test": 900, "train+val": 1600, "all": 2500}
    test = load_data("sklearn-patches", "test")
    assert test.images.shape[1:] == (3, 32, 32) and torch.equal(
        test.images, load_data("sklearn-patches", "test").images
    )
    assert (test.images[:, 0] != test.images[:, 1]).float().mean() > 0.5  # colour, not grey in three channels
    train = {bytes(x.numpy().tobytes()) for x in load_data("sklearn-patches", "train+val").images}
    assert not any(bytes(x.numpy().tobytes()) in train for x in test.images)


def test_held_out_patches_score_far_closer_than_noise_or_blur():
    anchor = held_out_anchor(200, resamples=3)["held_out_frechet_mean"]
    control = controls(200)
    assert 0 < anchor < control["blurred_held_out_frechet"] / 2
    assert control["blurred_held_out_frechet"] < control["noise_frechet"]
    test = load_data("sklearn-patches", "test").images
    grid = side_by_side(test[:64])
    assert grid.mode == "RGB" and grid.width > 2 * grid.height  # samples | real patches
