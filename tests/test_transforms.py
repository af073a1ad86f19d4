"""The framework-free engine: kernelaug.functional, LearnedBlur, LearnedBlurBatch, DataLoader use."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kernelaug as ka
from kernelaug import functional as KF
from kernelaug.bank.codes import adapt_grid
from kernelaug.transforms import CodeSampler, LearnedBlur, LearnedBlurBatch, seed_worker
from transform_checker import (BlurDataset, CodeDataset, check_transform, sharpness, textured, tiny_model,
                               write_bank)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def files(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("engine")
    model_path = ka.save_model(model, root / "tiny.safetensors")
    return model_path, write_bank(root / "bank.h5", model)


@pytest.fixture(scope="module")
def bank(files):
    return ka.KernelBank(files[1])


@pytest.fixture(scope="module")
def image():
    return textured(np.random.default_rng(0), 96, 128)


# -- the shared checker --------------------------------------------------------------------------
def _inputs():
    rng = np.random.default_rng(1)
    rgb = textured(rng, 70, 90)
    return [
        rgb,                                                   # uint8 HWC, not a multiple of the cell
        rgb.astype(np.float32) / 255,                          # float32 HWC
        rgb[..., 0],                                           # grayscale HW
        rgb[..., :1],                                          # grayscale HW1
        np.concatenate([rgb, rng.integers(0, 256, (70, 90, 1), dtype=np.uint8)], -1),  # RGBA
        rgb.astype(np.uint16) * 257,                           # uint16
        torch.from_numpy(rgb).permute(2, 0, 1).float() / 255,  # torch CHW float
        torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),   # torch CHW uint8
        torch.from_numpy(rgb).permute(2, 0, 1).double()[None] / 255,  # torch BCHW float64
    ]


def test_engine_passes_the_checker(model, bank):
    check_transform(lambda seed: LearnedBlur(model, bank, seed=seed), _inputs)


def test_engine_batched_equals_unbatched(model, bank):
    rng = np.random.default_rng(2)
    frames = [torch.from_numpy(textured(rng, 64, 80)).permute(2, 0, 1).float() / 255 for _ in range(3)]
    check_transform(lambda seed: LearnedBlur(model, bank, seed=seed, strength=(0.3, 1.0)), frames,
                    stack=torch.stack, unstack=list)
    arrays = [textured(rng, 50, 60) for _ in range(3)]
    check_transform(lambda seed: LearnedBlur(model, bank, seed=seed, p=0.5, parametric="motion",
                                             parametric_ratio=0.5), arrays, stack=np.stack, unstack=list)


def test_options_pass_the_checker(model, bank):
    for options in ({"mode": "gaussian"}, {"mode": "mix", "grid_mode": "tile"}, {"strength": (0.2, 0.8)},
                    {"parametric": "motion", "parametric_ratio": 1.0}, {"p": 0.5}):
        check_transform(lambda seed: LearnedBlur(model, bank, seed=seed, **options), _inputs()[:3])


# -- behaviour -----------------------------------------------------------------------------------
def test_blur_is_visible_and_p0_is_identity(model, bank, image):
    blurred = LearnedBlur(model, bank, seed=0)(image)
    assert sharpness(blurred) < 0.7 * sharpness(image)
    same = LearnedBlur(model, bank, p=0.0, seed=0)(image)
    assert np.array_equal(same, image) and same is not image
    tensor = torch.rand(3, 40, 50, dtype=torch.float64)
    assert torch.equal(LearnedBlur(model, bank, p=0.0)(tensor), tensor)


def test_strength_blends_linearly(model, bank, image):
    sharp = image.astype(np.float32) / 255
    params = LearnedBlur(model, bank, seed=0).make_params()
    engine = LearnedBlur(model, bank)
    full = engine.apply(sharp, params)
    half = engine.apply(sharp, {**params, "strength": 0.5})
    none = engine.apply(sharp, {**params, "strength": 0.0})
    np.testing.assert_allclose(half, (sharp + full) / 2, atol=1e-5)
    np.testing.assert_allclose(none, sharp, atol=1e-6)
    assert np.array_equal(engine.apply(image, {**params, "strength": 0.0}), image)


def test_grayscale_is_the_mean_of_the_rgb_blur(model, bank, image):
    engine = LearnedBlur(model, bank)
    params = LearnedBlur(model, bank, seed=3).make_params()
    gray = image[..., 1].astype(np.float32) / 255
    rgb = engine.apply(np.repeat(gray[..., None], 3, -1), params)
    np.testing.assert_allclose(engine.apply(gray, params), rgb.mean(-1), atol=1e-6)
    one = torch.from_numpy(gray)[None]
    np.testing.assert_allclose(engine.apply(one, params)[0].numpy(), rgb.mean(-1), atol=1e-6)


def test_rgba_keeps_alpha(model, bank, image):
    engine = LearnedBlur(model, bank)
    params = LearnedBlur(model, bank, seed=4).make_params()
    alpha = np.random.default_rng(0).integers(0, 256, image.shape[:2], dtype=np.uint8)
    out = engine.apply(np.dstack([image, alpha]), params)
    assert np.array_equal(out[..., 3], alpha)
    assert np.array_equal(out[..., :3], engine.apply(image, params))


def test_seeding_reseed_and_explicit_rng(model, bank, image):
    a = LearnedBlur(model, bank, seed=5)
    b = LearnedBlur(model, bank, seed=6)
    first = a(image)
    assert not np.array_equal(first, b(image))
    a.reseed(5)
    assert np.array_equal(a(image), first)
    assert np.array_equal(a(image, rng=11), b(image, rng=11))
    assert np.array_equal(a(image, rng=np.random.default_rng(12)), b(image, rng=np.random.default_rng(12)))
    assert a.seed == 5


def test_parametric_motion_and_callable(model, bank, image):
    engine = LearnedBlur(model, bank, parametric="motion", parametric_ratio=1.0, motion_length=(9, 9), seed=0)
    params = engine.make_params()
    assert params["kind"] == "parametric" and params["length"] == 9
    out = engine.apply(image, params)
    expected = KF.motion_blur(image.astype(np.float32) / 255, 9, params["angle"])
    assert np.abs(out.astype(np.float64) - np.round(expected * 255)).max() <= 1
    seen = []

    def negative(x):
        seen.append(x.dtype)
        return 255 - x if x.dtype == np.uint8 else 1 - x

    inverted = LearnedBlur(model, bank, parametric=negative, parametric_ratio=1.0, seed=0)
    assert np.array_equal(inverted(image), 255 - image)
    assert np.allclose(inverted(image.astype(np.float32) / 255), 1 - image / 255, atol=1e-6)
    assert seen == [np.uint8, np.float32]
    kinds = [LearnedBlur(model, bank, parametric="motion", parametric_ratio=0.5, seed=s).make_params()["kind"]
             for s in range(40)]
    assert 8 < kinds.count("parametric") < 32


def test_motion_kernel_is_a_normalised_line():
    for length, angle in ((1, 0), (5, 0), (6, 30), (15, 90), (15, 137.5)):
        kernel = KF.motion_kernel(length, angle)
        assert kernel.shape[0] % 2 == 1 and abs(kernel.sum() - 1) < 1e-5 and kernel.min() >= 0
    horizontal = KF.motion_kernel(5, 0)
    assert np.allclose(horizontal[2], 0.2) and np.allclose(np.delete(horizontal, 2, 0), 0)
    image = textured(np.random.default_rng(0), 40, 40)
    assert np.array_equal(KF.motion_blur(image, 1, 0), image)
    assert sharpness(KF.motion_blur(image, 9, 45)) < 0.5 * sharpness(image)


def test_pad_reflect_never_fails():
    for height, width in ((1, 1), (1, 5), (2, 3), (3, 200), (64, 64)):
        x = torch.rand(1, 3, height, width)
        padded, (top, left) = KF.pad_to_multiple(x, 64)
        assert padded.shape[-2] % 64 == 0 and padded.shape[-1] % 64 == 0
        assert torch.equal(padded[..., top:top + height, left:left + width], x)
    x = torch.arange(4.0).view(1, 1, 1, 4)
    assert KF.pad_reflect(x, 0, 0, 2, 2).flatten().tolist() == [2, 1, 0, 1, 2, 3, 2, 1]
    assert KF.pad_reflect(x, 0, 0, 5, 0).flatten().tolist()[:5] == [1, 2, 3, 2, 1]


def test_learned_blur_function(model, bank):
    images = torch.rand(2, 3, 200, 150, dtype=torch.float64)  # grid 4x3 from 2x2 codes
    before = images.clone()
    codes = torch.from_numpy(bank.sample(2, rng=0))
    out = KF.learned_blur(images, codes, model, strength=1.0)
    assert out.dtype == torch.float64 and out.shape == images.shape and torch.equal(images, before)
    assert 0 <= out.min() and out.max() <= 1
    tiled = KF.learned_blur(images, codes, model, grid_mode="tile")
    assert not torch.allclose(out, tiled)
    per_image = KF.learned_blur(images, codes, model, strength=[0.0, 1.0])
    assert torch.allclose(per_image[0], images[0].clamp(0, 1), atol=1e-6)
    assert torch.allclose(per_image[1], out[1], atol=1e-5)
    with pytest.raises(ValueError, match="kernel_dim"):
        KF.learned_blur(images, torch.zeros(2, 5, 2, 2), model)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        KF.learned_blur(images[:, :1], codes, model)


def test_output_is_an_ordinary_tensor(model, bank):
    """Outputs can enter autograd graphs (no inference tensors leak out)."""
    out = LearnedBlur(model, bank, seed=0)(torch.rand(3, 64, 64))
    assert not out.is_inference()
    layer = torch.nn.Conv2d(3, 1, 3)
    layer(out[None]).sum().backward()


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 10, 2), np.uint8), "channels"),
    (np.zeros((10, 10, 5), np.uint8), "channels"),
    (np.zeros((3, 10, 10, 10, 3), np.uint8), "shape"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (np.zeros((10, 10, 3), np.int32), "dtype"),
    (np.zeros((10, 10, 3), bool), "dtype"),
    (np.full((10, 10, 3), np.nan, np.float32), "NaN"),
    (np.full((10, 10, 3), np.inf, np.float32), "NaN/Inf"),
    (np.full((10, 10, 3), 255.0, np.float32), r"\[0, 1\]"),
    (np.zeros((3, 40, 50), np.uint8), "channels-first"),
    (torch.zeros(40, 50, 3), "channels-last"),
    (torch.zeros(3, 10, 10, dtype=torch.int64), "dtype"),
])
def test_bad_images_raise_value_error(model, bank, bad, message):
    with pytest.raises(ValueError, match=message):
        LearnedBlur(model, bank, seed=0)(bad)


def test_bad_arguments_raise_readable_errors(model, bank, files, tmp_path):
    cases = [({"p": 1.5}, ValueError, "p must be in"), ({"mode": "best"}, ValueError, "mode must be one of"),
             ({"strength": (0.8, 0.2)}, ValueError, "lo <= hi"), ({"strength": 2}, ValueError, "strength"),
             ({"grid_mode": "stretch"}, ValueError, "grid_mode"),
             ({"parametric_ratio": 0.5}, ValueError, "needs a parametric blur"),
             ({"parametric": "zoom", "parametric_ratio": 0.5}, ValueError, "parametric must be"),
             ({"parametric": "motion", "motion_length": (0, 3)}, ValueError, "motion_length"),
             ({"seed": "abc"}, TypeError, "seed"), ({"device": "nonsense"}, ValueError, "device")]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            LearnedBlur(model, bank, **kwargs)
    with pytest.raises(TypeError, match="model must be"):
        LearnedBlur(42, bank)
    with pytest.raises(TypeError, match="bank must be"):
        LearnedBlur(model, 42)
    other = tiny_model(seed=1)
    with pytest.raises(ValueError, match="hash mismatch"):
        LearnedBlur(other, bank)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        LearnedBlur(model, tmp_path / "missing.h5")
    engine = LearnedBlur(str(files[0]), str(files[1]), seed=0)   # paths work
    assert engine.model.kernel_dim == 8 and engine.bank.path == files[1]


@pytest.mark.parametrize("layout", ["HW", "HW1", "HWC", "RGBA", "NHWC", "torch CHW", "torch BCHW"])
def test_uint8_output_rounds_like_torch(layout):
    """from_rgb_batch's OpenCV path for uint8 images (numpy, and torch on the CPU): the same values as
    torch's mul, round (half to even), clamp and cast, at the rounding boundaries and outside [0, 1] too."""
    rng = np.random.default_rng(3)
    shape = {"HW": (5, 40, 40), "HW1": (5, 40, 40, 1), "HWC": (5, 40, 40, 3), "RGBA": (5, 40, 40, 4),
             "NHWC": (5, 40, 40, 3), "torch CHW": (5, 3, 40, 40), "torch BCHW": (5, 3, 40, 40)}[layout]
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    image = image if layout.endswith("NHWC") or layout.endswith("BCHW") else image[0]
    image = torch.from_numpy(image) if layout.startswith("torch") else image
    rgb, spec = KF.to_rgb_batch(image)
    halves = torch.from_numpy(((np.arange(rgb[0].numel()) % 256 + 0.5) / 255).astype(np.float32))
    values = torch.stack([halves.view(rgb[0].shape), torch.rand(rgb[0].shape, generator=torch.Generator().manual_seed(0))])
    values = torch.cat([values, values.nextafter(torch.tensor(2.0)), values * 1.2 - 0.1])[:rgb.shape[0]]
    values[0, 0, 0, :3] = torch.tensor([-0.5, 1.5, 0.5 / 255])
    out = KF.from_rgb_batch(values, spec)
    with_grad = KF.from_rgb_batch(values.clone().requires_grad_(), spec)  # uint8 out: no gradient to keep
    assert (torch.equal if layout.startswith("torch") else np.array_equal)(with_grad, out)
    if spec.channels == 4:
        values = torch.cat((values, spec.alpha), dim=1)
    elif spec.channels == 1:
        values = values.mean(dim=1, keepdim=True)
    expected = values.mul(255).round().clamp(0, 255).to(torch.uint8)
    if layout.startswith("torch"):
        assert type(out) is torch.Tensor and out.dtype == torch.uint8 and out.is_contiguous()
        assert torch.equal(out, expected.reshape(image.shape))
        return
    expected = expected.permute(0, 2, 3, 1).numpy().reshape(image.shape)
    assert out.dtype == np.uint8 and out.shape == image.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


# -- property-based: any size, channels, dtype; NaN/Inf -> ValueError -----------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(height=st.integers(1, 1024), width=st.integers(1, 1024), channels=st.sampled_from([None, 1, 3, 4]),
       dtype=st.sampled_from(["uint8", "float32", "torch"]), poison=st.sampled_from([None, np.nan, np.inf, -np.inf]),
       where=st.integers(0, 2**31))
@example(height=1, width=1, channels=None, dtype="uint8", poison=None, where=0)
@example(height=1024, width=1024, channels=3, dtype="uint8", poison=None, where=0)
@example(height=1024, width=1024, channels=4, dtype="torch", poison=np.nan, where=12345)
def test_any_image_gives_a_correct_output_or_a_value_error(model, bank, height, width, channels, dtype, poison, where):
    rng = np.random.default_rng(height * 7919 + width)
    shape = (height, width) if channels is None else (height, width, channels)
    pixels = rng.random(shape, dtype=np.float32)
    if poison is not None:
        pixels.reshape(-1)[where % pixels.size] = poison
    if dtype == "uint8" and poison is None:
        image = (pixels * 255).astype(np.uint8)
    elif dtype == "torch":
        image = torch.from_numpy(pixels if channels is None else np.moveaxis(pixels, -1, 0).copy())
    else:
        image = pixels
    engine = LearnedBlur(model, bank, seed=0, parametric="motion", parametric_ratio=0.3)
    if poison is not None:
        with pytest.raises(ValueError, match="NaN/Inf"):
            engine(image)
        return
    out = engine(image)
    assert type(out) is type(image) and out.dtype == image.dtype and tuple(out.shape) == tuple(image.shape)
    values = np.asarray(out, np.float64)
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= (255 if dtype == "uint8" else 1)


# -- LearnedBlurBatch ----------------------------------------------------------------------------
def test_batch_device_auto_picks_an_available_device(model, bank):
    batch_aug = LearnedBlurBatch(model, bank, device="auto", seed=0)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(batch_aug.model.parameters()).device.type == expected
    with pytest.raises(ValueError, match="unknown device"):
        LearnedBlurBatch(model, bank, device="tpu-please")


def test_batch_matches_the_engine(model, bank):
    rng = np.random.default_rng(3)
    sharp = torch.stack([torch.from_numpy(textured(rng, 64, 96)).permute(2, 0, 1).float() / 255 for _ in range(4)])
    before = sharp.clone()
    batch_aug = LearnedBlurBatch(model, bank, seed=0)
    blurred, target, codes = batch_aug(sharp)
    assert target is sharp and torch.equal(sharp, before)
    assert blurred.shape == sharp.shape and codes.shape == (4, 8, 2, 2)
    engine = LearnedBlur(model, bank)
    for i in range(4):
        one = engine.apply(sharp[i], {"apply": True, "kind": "learned", "strength": 1.0, "code": codes[i].numpy()})
        assert torch.allclose(one, blurred[i], atol=2e-4)
    again, _, _ = LearnedBlurBatch(model, bank, seed=0)(sharp)
    assert torch.equal(again, blurred)
    given_codes, _, same = LearnedBlurBatch(model, bank, seed=9)(sharp, codes=codes)
    assert torch.allclose(given_codes, blurred, atol=1e-6) and same is codes
    ranged, _, _ = LearnedBlurBatch(model, bank, strength=(0.0, 1.0), seed=0)(sharp, codes=codes)
    assert not torch.allclose(ranged, blurred)
    assert LearnedBlurBatch(model, bank, seed=0)(sharp.to(torch.float64))[0].dtype == torch.float64
    with pytest.raises(ValueError, match="B = 4"):
        batch_aug(sharp, codes=codes[:2])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        batch_aug(sharp[0])


def test_batch_passes_the_checker(model, bank):
    rng = np.random.default_rng(4)
    batches = [torch.rand(2, 3, 40, 60), torch.from_numpy(textured(rng, 40, 60)).permute(2, 0, 1)[None].contiguous()]
    check_transform(lambda seed: (lambda x, aug=LearnedBlurBatch(model, bank, seed=seed): aug(x)[0]), batches)


# -- DataLoader ----------------------------------------------------------------------------------
def _collect(dataset, context: str, seed: int, workers: int = 2):
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers, worker_init_fn=seed_worker,
                                         multiprocessing_context=context, generator=torch.Generator().manual_seed(seed))
    images, worker_ids = zip(*loader)
    return torch.cat(images), torch.cat(worker_ids)


def _check_loader(dataset, context, other_seed: bool = True):
    first, ids = _collect(dataset, context, seed=0)
    assert set(ids.tolist()) == {0, 1}
    # Each worker handles whole batches; batch 0 (worker 0) and batch 1 (worker 1) hold the first
    # draw of each worker: with seed_worker they must differ.
    assert not torch.equal(first[0], first[2])
    second, _ = _collect(dataset, context, seed=0)
    assert torch.equal(first, second), "a seeded run must be reproducible"
    if other_seed:
        other, _ = _collect(dataset, context, seed=1)
        assert not torch.equal(first, other)


def test_dataloader_fork(model, bank, image):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    dataset = BlurDataset(image[:64, :64], LearnedBlur(model, bank, seed=0), length=8)
    _check_loader(dataset, "fork")


def test_dataloader_spawn(files, image):
    """Spawned workers unpickle the engine: the model travels as weights, the bank as its path."""
    dataset = BlurDataset(image[:64, :64], LearnedBlur(str(files[0]), str(files[1]), seed=0), length=4)
    _check_loader(dataset, "spawn", other_seed=False)  # spawning is slow on 2 cores: two runs


def test_workers_without_seed_worker_repeat_themselves(model, bank, image):
    """Why seed_worker exists: forked workers inherit one generator state."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    dataset = BlurDataset(image[:64, :64], LearnedBlur(model, bank, seed=0), length=4)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="fork")
    images = torch.cat([batch for batch, _ in loader])
    assert torch.equal(images[0], images[2])


def test_codes_drawn_in_workers_then_batched(model, bank, image):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    dataset = CodeDataset(image[:64, :64], bank, length=8, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, worker_init_fn=seed_worker,
                                         multiprocessing_context="fork", generator=torch.Generator().manual_seed(0))
    batch_aug = LearnedBlurBatch(model, bank)
    codes = []
    for sharp, code in loader:
        blurred, _, used = batch_aug(sharp, codes=code)
        assert blurred.shape == sharp.shape and used is code
        codes.append(code)
    codes = torch.cat(codes)
    assert not torch.equal(codes[0], codes[4])  # worker 0's and worker 1's first draws


def test_code_sampler(bank):
    sampler = CodeSampler(bank, seed=0)
    one, many = sampler(), sampler(3)
    assert one.shape == (8, 2, 2) and many.shape == (3, 8, 2, 2) and one.dtype == torch.float32
    sampler.reseed(0)
    assert torch.equal(sampler(), one)


def test_seed_worker_finds_nested_transforms(model, bank):
    from kernelaug.transforms import _find_seedables
    inner = LearnedBlur(model, bank, seed=0)

    class Wrapper:
        def __init__(self):
            self.pipeline = {"steps": [lambda x: x, (inner,)]}

    found = _find_seedables(torch.utils.data.Subset(Wrapper(), [0]))
    assert found == [inner]


@pytest.mark.parametrize("threads,chunk", [(1, 1), (2, 2), (3, KF.CPU_CHUNK)])
def test_cpu_passes_take_one_image_per_thread_up_to_the_cap(model, bank, monkeypatch, threads, chunk):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert KF.cpu_chunk() == chunk
    seen = []
    render = model.render
    monkeypatch.setattr(model, "render", lambda sharp, params: seen.append(sharp.shape[0]) or render(sharp, params))
    KF.learned_blur(torch.rand(3, 3, 64, 64), torch.from_numpy(bank.sample(3, rng=0)), model)
    assert seen == [chunk] * (3 // chunk) + ([3 % chunk] if 3 % chunk else [])


@pytest.mark.parametrize("decode_cells, groups", [(1, [2, 2, 1]), (2, [2, 2, 1]), (3, [2, 2, 1]), (4, [4, 1]), (4096, [5])])
def test_codes_decoded_once_per_group_of_chunks_blur_as_one_by_one(model, bank, monkeypatch, decode_cells, groups):
    # 5 images of 64x64 (one cell each) in chunks of 2: groups of 2 (1 to 3 cells: at least one chunk, and
    # whole chunks), 4 (4 cells) or all 5 images per decode; each image as model.apply would blur it alone.
    monkeypatch.setattr(KF, "DECODE_CELLS", decode_cells)
    decoded = []
    decode = model.decode
    monkeypatch.setattr(model, "decode", lambda code: decoded.append(code.shape[0]) or decode(code))
    images = torch.rand(5, 3, 64, 64)
    codes = adapt_grid(torch.from_numpy(bank.sample(5, rng=1)), 1, 1, "resize")
    out = KF.learned_blur(images, codes, model, chunk_size=2)
    assert decoded == groups
    with torch.no_grad():
        alone = torch.cat([model.apply(images[i:i + 1], codes[i:i + 1]).clamp(0, 1) for i in range(5)])
    torch.testing.assert_close(out, alone, rtol=0, atol=1e-6)


def test_empty_batch_gives_an_empty_result(model):
    images = torch.rand(0, 3, 64, 64)
    out = KF.learned_blur(images, torch.zeros(0, model.kernel_dim, 1, 1), model)
    assert out.shape == images.shape and out.dtype == images.dtype


def test_chunked_learned_blur_passes_gradients_to_the_images(model, bank):
    """Chunks are clamped into one output outside autograd; images that need a gradient (a blend with
    strength < 1 depends on them) go through a path that keeps it, with the same values."""
    codes = torch.from_numpy(bank.sample(3, rng=0))
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    grads = []
    for chunk in (1, 3):
        out = KF.learned_blur(images, codes, model, strength=0.5, chunk_size=chunk)
        grads.append(torch.autograd.grad(out.sum(), images)[0])
        assert torch.allclose(out, KF.learned_blur(images.detach(), codes, model, strength=0.5, chunk_size=chunk))
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


def test_chunked_forward_equals_one_pass(model, bank):
    images = torch.rand(5, 3, 64, 64)
    codes = torch.from_numpy(bank.sample(5, rng=1))
    whole = KF.learned_blur(images, codes, model, chunk_size=5)
    assert torch.allclose(KF.learned_blur(images, codes, model, chunk_size=2), whole, atol=1e-5)
    assert torch.allclose(KF.learned_blur(images, codes, model), whole, atol=1e-5)
    # Each chunk blends with its own images' strengths.
    strength = torch.linspace(0, 1, 5)
    chunked = KF.learned_blur(images, codes, model, strength=strength, chunk_size=2)
    assert torch.allclose(chunked, torch.lerp(images, whole, strength.view(5, 1, 1, 1)).clamp(0, 1), atol=1e-5)
    assert torch.equal(chunked[0], images[0])
    with pytest.raises(ValueError, match="chunk_size"):
        KF.learned_blur(images, codes, model, chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        LearnedBlurBatch(model, bank, chunk_size=-1)
