"""The Albumentations, imgaug and torchvision adapters inside their own frameworks' pipelines."""

from __future__ import annotations

import json
import multiprocessing
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import kernelaug as ka
from kernelaug.transforms import seed_worker
from transform_checker import (BlurDataset, assert_aligned_pair, check_transform, is_exact_crop, sharpness, textured,
                               tiny_model, write_bank)

A = pytest.importorskip("albumentations")
iaa = pytest.importorskip("imgaug.augmenters")
v2 = pytest.importorskip("torchvision.transforms.v2")
from torchvision import tv_tensors  # noqa: E402

from kernelaug.integrations import albumentations as ka_album  # noqa: E402
from kernelaug.integrations import imgaug as ka_imgaug  # noqa: E402
from kernelaug.integrations import torchvision as ka_tv  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrations")
    model = tiny_model()
    model_path = ka.save_model(model, root / "tiny.safetensors")
    return str(model_path), str(write_bank(root / "bank.h5", model))


@pytest.fixture(scope="module")
def image():
    return textured(np.random.default_rng(0), 96, 128)


def _numpy_inputs():
    rgb = textured(np.random.default_rng(1), 70, 90)
    alpha = np.full((70, 90, 1), 200, np.uint8)
    return [rgb, rgb.astype(np.float32) / 255, rgb[..., 0], np.concatenate([rgb, alpha], -1)]


def test_import_kernelaug_imports_no_framework():
    code = ("import sys, kernelaug, kernelaug.transforms, kernelaug.functional, kernelaug.integrations; "
            "print(sorted(m for m in ('albumentations', 'imgaug', 'torchvision') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


# -- Albumentations ------------------------------------------------------------------------------
def test_albumentations_passes_the_checker(files):
    def make(seed):
        pipeline = A.Compose([ka_album.LearnedBlur(*files, p=1.0)], seed=seed)
        return lambda x: pipeline(image=x)["image"]
    check_transform(make, _numpy_inputs)


def test_albumentations_compose_oneof_and_p(files, image):
    blur = ka_album.LearnedBlur(*files, p=1.0, strength=(0.5, 1.0))
    pipeline = A.Compose([A.HorizontalFlip(p=0.5), A.OneOf([blur, A.MotionBlur(p=1.0)], p=1.0)], seed=7)
    outputs = [pipeline(image=image)["image"] for _ in range(6)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outputs)
    assert all(sharpness(o) < sharpness(image) for o in outputs)
    again = A.Compose([A.HorizontalFlip(p=0.5), A.OneOf([ka_album.LearnedBlur(*files, p=1.0, strength=(0.5, 1.0)),
                                                        A.MotionBlur(p=1.0)], p=1.0)], seed=7)
    assert all(np.array_equal(o, again(image=image)["image"]) for o in outputs)
    other = A.Compose([ka_album.LearnedBlur(*files, p=1.0)], seed=8)(image=image)["image"]
    assert not np.array_equal(other, A.Compose([ka_album.LearnedBlur(*files, p=1.0)], seed=9)(image=image)["image"])
    never = A.Compose([ka_album.LearnedBlur(*files, p=0.0)], seed=0)
    assert np.array_equal(never(image=image)["image"], image)
    half = A.Compose([ka_album.LearnedBlur(*files, p=0.5)], seed=0)
    changed = [not np.array_equal(half(image=image)["image"], image) for _ in range(30)]
    assert 5 < sum(changed) < 25
    batch = A.Compose([ka_album.LearnedBlur(*files, p=1.0)], seed=0)(images=np.stack([image, image]))["images"]
    assert batch.shape == (2, *image.shape)


def test_albumentations_uses_only_its_own_random_state(files, image):
    np.random.seed(0)
    random.seed(0)
    numpy_state, python_state = np.random.get_state()[1].copy(), random.getstate()
    A.Compose([ka_album.LearnedBlur(*files, p=0.5)], seed=1)(image=image)
    assert np.array_equal(np.random.get_state()[1], numpy_state) and random.getstate() == python_state


def test_albumentations_serialisation_round_trip(files, image, tmp_path):
    pipeline = A.Compose([A.HorizontalFlip(p=0.5),
                          ka_album.LearnedBlur(files[0], files[1], p=0.9, mode="mix", strength=[0.4, 1.0],
                                               parametric="motion", parametric_ratio=0.3)], seed=3)
    data = A.to_dict(pipeline)
    entry = data["transform"]["transforms"][1]
    assert entry["__class_fullname__"] == "kernelaug.integrations.albumentations.LearnedBlur"
    assert entry["model"] == files[0] and entry["bank"] == files[1] and entry["p"] == 0.9
    text = json.dumps(data)  # plain JSON
    restored = A.from_dict(json.loads(text))
    assert A.to_dict(restored) == json.loads(text) or json.dumps(A.to_dict(restored)) == text
    restored.set_random_seed(3)
    assert all(np.array_equal(pipeline(image=image)["image"], restored(image=image)["image"]) for _ in range(3))
    A.save(pipeline, str(tmp_path / "pipeline.json"))
    loaded = A.load(str(tmp_path / "pipeline.json"))
    assert isinstance(loaded.transforms[1], ka_album.LearnedBlur)
    # objects loaded from files serialise as their paths
    from_objects = ka_album.LearnedBlur(ka.load_model(files[0]), ka.KernelBank(files[1]), p=1.0)
    assert A.to_dict(from_objects)["transform"]["model"] == files[0]
    in_memory = ka_album.LearnedBlur(tiny_model(), files[1], p=1.0)
    with pytest.raises(ValueError, match="cannot serialise LearnedBlur"):
        A.to_dict(in_memory)


def test_albumentations_pair_recipes(files, image):
    geometric = A.Compose([A.RandomCrop(64, 64), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)], seed=0)
    blur = A.Compose([ka_album.LearnedBlur(*files, p=1.0)], seed=0)
    for _ in range(3):
        blurred, sharp = ka_album.make_pair(image, geometric, blur)
        assert_aligned_pair(blurred, sharp, image)
    # blur the full frame, then one set of geometric parameters for both via additional_targets
    shared = A.Compose([A.RandomCrop(64, 64), A.HorizontalFlip(p=0.5)], additional_targets={"blurred": "image"},
                       seed=1)
    for _ in range(3):
        full = blur(image=image)["image"]
        out = shared(image=image, blurred=full)
        assert_aligned_pair(out["blurred"], out["image"], image)
        assert is_exact_crop(out["blurred"], full)
    # the pitfall the docs warn about: LearnedBlur in a Compose blurs every "image" target
    wrong = A.Compose([ka_album.LearnedBlur(*files, p=1.0)], additional_targets={"target": "image"}, seed=0)
    out = wrong(image=image, target=image)
    assert not np.array_equal(out["target"], image)


# -- imgaug --------------------------------------------------------------------------------------
def test_imgaug_passes_the_checker(files):
    def make(seed):
        augmenter = ka_imgaug.LearnedBlur(*files, seed=seed)
        return lambda x: augmenter(images=x) if isinstance(x, np.ndarray) and x.ndim == 4 else augmenter(image=x)
    rng = np.random.default_rng(2)
    check_transform(make, _numpy_inputs)
    check_transform(make, [textured(rng, 48, 64) for _ in range(3)], stack=np.stack, unstack=list)


def test_imgaug_sequential_sometimes_determinism(files, image):
    def pipeline(seed):
        blur = ka_imgaug.LearnedBlur(*files, strength=(0.5, 1))
        sequence = iaa.Sequential([iaa.Fliplr(0.5), iaa.Sometimes(0.7, blur)])
        sequence.seed_(seed)  # seeds the children too (Sequential(seed=...) seeds only itself)
        return sequence
    first = pipeline(0)(images=[image] * 4)
    assert all(np.array_equal(a, b) for a, b in zip(first, pipeline(0)(images=[image] * 4)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, pipeline(1)(images=[image] * 4)))
    det = pipeline(2).to_deterministic()
    one, two = det(image=image), det(image=image)
    assert np.array_equal(one, two)
    stochastic = pipeline(3)
    assert not all(np.array_equal(stochastic(image=image), stochastic(image=image)) for _ in range(3))
    array = pipeline(0)(images=np.stack([image] * 4))
    assert isinstance(array, np.ndarray) and array.shape == (4, *image.shape)
    augmenter = ka_imgaug.LearnedBlur(*files, mode="gaussian", name="learned")
    assert augmenter.get_parameters()[:3] == [files[0], files[1], "gaussian"] and augmenter.name == "learned"


def test_imgaug_leaves_other_augmentables_alone(files, image):
    from imgaug.augmentables.kps import Keypoint, KeypointsOnImage
    from imgaug.augmentables.segmaps import SegmentationMapsOnImage
    segmap = SegmentationMapsOnImage(np.arange(96 * 128, dtype=np.int32).reshape(96, 128) % 5, shape=image.shape)
    keypoints = KeypointsOnImage([Keypoint(10, 20)], shape=image.shape)
    out, seg, kps = ka_imgaug.LearnedBlur(*files, seed=0)(image=image, segmentation_maps=segmap, keypoints=keypoints)
    assert np.array_equal(seg.get_arr(), segmap.get_arr()) and kps.keypoints[0].x == 10
    assert sharpness(out) < sharpness(image)


def test_imgaug_pair_recipes(files, image):
    geometric = iaa.Sequential([iaa.CropToFixedSize(64, 64), iaa.Fliplr(0.5), iaa.Flipud(0.5)], seed=0)
    blur = ka_imgaug.LearnedBlur(*files, seed=0)
    for blur_first in (False, True):
        for _ in range(3):
            blurred, sharp = ka_imgaug.make_pair(image, geometric, blur, blur_first=blur_first)
            assert_aligned_pair(blurred, sharp, image)
    # to_deterministic: the same geometry on both images, whatever they are
    det = geometric.to_deterministic()
    assert np.array_equal(det(image=image), det(image=image.copy()))


# -- torchvision ---------------------------------------------------------------------------------
def _tensor(image):
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


def _hwc(tensor):
    return tensor.as_subclass(torch.Tensor).permute(1, 2, 0).numpy()


def test_torchvision_passes_the_checker(files, image):
    rgb = textured(np.random.default_rng(3), 70, 90)
    inputs = [_tensor(rgb), _tensor(rgb).float() / 255, tv_tensors.Image(_tensor(rgb)),
              tv_tensors.Image(_tensor(rgb)[None].float() / 255), _tensor(rgb)[:1].float() / 255]
    check_transform(lambda seed: ka_tv.LearnedBlur(*files, seed=seed), inputs)


def test_torchvision_compose_with_tv_tensors(files, image):
    sample = {"image": tv_tensors.Image(_tensor(image)),
              "mask": tv_tensors.Mask(torch.from_numpy(np.arange(96 * 128).reshape(96, 128) % 7)),
              "boxes": tv_tensors.BoundingBoxes([[10, 10, 50, 40]], format="XYXY", canvas_size=(96, 128)),
              "label": 3, "video": tv_tensors.Video(torch.rand(2, 3, 96, 128))}
    geometry = [v2.RandomCrop(64), v2.RandomHorizontalFlip()]
    with_blur = v2.Compose([*geometry, ka_tv.LearnedBlur(*files)])  # (loading a model draws from torch's RNG)
    torch.manual_seed(0)
    plain = v2.Compose(geometry)(sample)
    torch.manual_seed(0)
    blurred = with_blur(sample)
    assert type(blurred["image"]) is tv_tensors.Image and blurred["image"].dtype == torch.uint8
    for key in ("mask", "boxes", "video"):
        assert type(blurred[key]) is type(plain[key]) and torch.equal(blurred[key], plain[key])
    assert blurred["label"] == 3
    assert sharpness(_hwc(blurred["image"])) < sharpness(_hwc(plain["image"]))
    # seed=None draws from torch's global RNG: torch.manual_seed reproduces, like every v2 transform
    blur = ka_tv.LearnedBlur(*files)
    torch.manual_seed(5)
    first = blur(sample["image"])
    torch.manual_seed(5)
    assert torch.equal(first, blur(sample["image"]))
    assert not torch.equal(first, blur(sample["image"]))
    assert ka_tv.LearnedBlur(*files, p=0.0)(sample["image"]).equal(sample["image"])


def test_torchvision_plain_tensor_rules(files, image):
    blur = ka_tv.LearnedBlur(*files, seed=0)
    first, second = _tensor(image).float() / 255, _tensor(image).float() / 255
    out_first, out_second = blur(first, second)  # no tv_tensors.Image: only the first plain tensor
    assert not torch.equal(out_first, first) and torch.equal(out_second, second)
    tv_image = tv_tensors.Image(first)
    out_image, out_plain = blur(tv_image, second)  # with an Image, plain tensors pass through
    assert not torch.equal(out_image, tv_image) and torch.equal(out_plain, second)
    import PIL.Image
    pil = blur(PIL.Image.fromarray(image))
    assert isinstance(pil, PIL.Image.Image) and pil.size == (128, 96) and pil.mode == "RGB"


def test_torchvision_pair_recipes(files, image):
    geometric = v2.Compose([v2.RandomCrop(64), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
    blur = ka_tv.LearnedBlur(*files, seed=0)
    torch.manual_seed(0)
    for blur_first in (False, True):
        for _ in range(3):
            blurred, sharp = ka_tv.make_pair(_tensor(image), geometric, blur, blur_first=blur_first)
            assert type(blurred) is tv_tensors.Image and type(sharp) is tv_tensors.Image
            assert_aligned_pair(_hwc(blurred), _hwc(sharp), image)
    # the recipe's core: two tv_tensors.Image in one call get the same geometric parameters
    a, b = geometric(tv_tensors.Image(_tensor(image)), tv_tensors.Image(_tensor(image)))
    assert torch.equal(a, b)


# -- DataLoader workers with the adapters --------------------------------------------------------
def _loader_images(dataset, seed):
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, worker_init_fn=seed_worker,
                                         multiprocessing_context="fork", generator=torch.Generator().manual_seed(seed))
    return torch.cat([batch for batch, _ in loader])


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_adapters_in_dataloader_workers(files, image):
    crop = image[:64, :64]
    pipelines = {
        "albumentations": (lambda p: lambda x: p(image=x)["image"])(A.Compose([ka_album.LearnedBlur(*files, p=1.0)],
                                                                              seed=0)),
        "imgaug": (lambda a: lambda x: a(image=x))(iaa.Sequential([ka_imgaug.LearnedBlur(*files)], seed=0)),
        "torchvision": (lambda t: lambda x: _hwc(t(_tensor(x))))(ka_tv.LearnedBlur(*files)),
    }
    for name, transform in pipelines.items():
        dataset = BlurDataset(crop, transform, length=4)
        first = _loader_images(dataset, 0)
        assert not torch.equal(first[0], first[2]), f"{name}: workers drew the same blur"
        assert torch.equal(first, _loader_images(dataset, 0)), f"{name}: seeded run not reproducible"
