"""Synthetic sharp/blurry paired datasets, made the way GoPro was made.

A sharp source (a crop of a scikit-image sample photo or a procedural
dead-leaves image) is taken to linear light, moved along a random exposure
trajectory, rendered as many sub-frames, averaged, clipped at sensor
saturation, given sensor noise, passed through a random camera response and
quantised to 8 bits. The sharp image is the middle sub-frame through the same
response, without noise.

Families:

* ``"shake"``: camera shake. A smooth random camera trajectory (translation,
  in-plane rotation and a little yaw/pitch, i.e. perspective), so the blur
  varies across the frame.
* ``"object"``: object motion. The camera is still; one to four textured
  foreground objects move along their own short, slightly curved, slightly
  spinning paths over a static background, so the blur is local and the
  background stays sharp.

Layout (GoPro): ``OUT/<split>/<family>_<NNNN>/{sharp,blur}/<KKKKKK>.png``,
one sequence per 10 consecutive pairs of a split, ``KKKKKK`` the pair's index
within its split. ``OUT/recipe.json`` holds every parameter and
``OUT/manifest.jsonl`` one line per pair (source, blur extent, sub-frames,
PSNR).

Train and test never share a source: :data:`TEST_PHOTOS` are used only for
the test split and :data:`TRAIN_PHOTOS` only for train; dead-leaves images
are drawn from per-pair streams keyed by (split, index), so no dead-leaves
image appears in both splits.

Determinism: pair ``k`` of split ``s`` draws all its randomness from
``np.random.SeedSequence(seed, spawn_key=(s_id, k))``; the files do not
depend on ``workers``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..paths import publish_folder, stage_folder

__all__ = [
    "FAMILIES", "GENERATOR", "TRAIN_PHOTOS", "TEST_PHOTOS",
    "make_synthetic", "make_pair", "sharp_source", "load_photo", "dead_leaves",
    "to_linear", "camera_trajectory", "trajectory_from_poses", "blur_extent",
    "CameraResponse", "random_response", "random_noise", "render_pair",
    "point_lights", "MovingObject", "random_objects", "render_object_pair",
]

FAMILIES = ("shake", "object")
GENERATOR = "kernelaug synthetic v1"

TRAIN_PHOTOS = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry",
                "retina", "colorwheel", "motorcycle", "camera", "coins", "grass", "gravel")
TEST_PHOTOS = ("chelsea", "coffee", "brick")  # skimage's "cat" is chelsea: test only

SPLITS = ("train", "test")
PAIRS_PER_SEQUENCE = 10
PHOTO_PROBABILITY = 0.6
NEAR_SHARP_PROBABILITY = 0.1
BLUR_EXTENT_PX = (5.0, 25.0)       # log-uniform, at size 256 (scales with size)
NEAR_SHARP_EXTENT_PX = (0.0, 2.0)
OBJECT_EXTENT_PX = (5.0, 35.0)     # log-uniform, at size 256
SUBFRAMES = (15, 31)               # raised so sub-frames are <= ~1 px apart
MAX_SUBFRAMES = 65
GAIN = (0.7, 1.4)                  # exposure gain, log-uniform
HIGHLIGHT_BOOST = (1.0, 8.0)       # extra gain of near-white pixels, log-uniform
GAMMA = (1.8, 2.6)                 # camera response gamma
S_CURVE = (0.0, 0.35)              # camera response S-curve strength
NOISE_SHOT = (5e-5, 1e-3)          # variance per unit of linear signal, log-uniform
NOISE_READ = (2e-4, 2e-3)          # read-noise std, log-uniform
RESPONSE_TOE = 0.003               # response is linear below this (as sRGB), bounding shadow gain
SOURCE_GAMMA = 2.2                 # sources are taken as sRGB-ish gamma 2.2


def _log_uniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# --------------------------------------------------------------------------- sources

@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as read-only uint8 RGB (grayscale promoted)."""
    try:
        import skimage.data
    except ImportError as e:
        raise ImportError("kernelaug.data.synthetic needs scikit-image for its sample photos: "
                          "pip install scikit-image") from e

    if name not in TRAIN_PHOTOS + TEST_PHOTOS:
        raise ValueError(f"unknown photo {name!r}; valid: {TRAIN_PHOTOS + TEST_PHOTOS}")
    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    img.setflags(write=False)
    return img


def _random_crop(rng, photo: np.ndarray, size: int) -> np.ndarray:
    """Random square crop, rescaled to size (downscaling when the photo allows)."""
    h, w = photo.shape[:2]
    side_max = min(h, w)
    side = int(round(_log_uniform(rng, size, side_max))) if side_max > size else side_max
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    crop = photo[y:y + side, x:x + side]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (size, size), interpolation=interp)
    crop = np.rot90(crop, int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop, dtype=np.float32) / 255.0


def dead_leaves(rng: np.random.Generator, size: int, r_min: float = 2.0,
                r_max: float | None = None, coverage: float = 4.0) -> np.ndarray:
    """Dead-leaves image: float32 (size, size, 3) in [0, 1], display (gamma) space.

    Occluding discs with radius density ~ 1/r^3 on [r_min, r_max] (a
    scale-invariant image), random colours, and inside each disc a linear
    shading gradient and a little band-pass texture; a few small discs are
    near-white (they become highlights). Rendered 2x supersampled.
    """
    ss = 2
    big = size * ss
    r_max = size / 3.0 if r_max is None else r_max
    a, b = r_min ** -2, r_max ** -2
    mean_area = math.pi * math.log(r_max / r_min) / (0.5 * (a - b))
    span = size + r_max  # centres fall up to r_max/2 outside the frame
    n = int(min(50000, math.ceil(coverage * span * span / mean_area)))

    radius = (a - rng.random(n) * (a - b)) ** -0.5
    centre = rng.uniform(-r_max / 2, size + r_max / 2, (n, 2))
    grey = rng.uniform(0.03, 1.0, (n, 1)) ** 1.5
    sat = rng.uniform(0.0, 0.8, (n, 1))
    colour = grey * (1 - sat + sat * rng.random((n, 3)))
    lights = (radius < 5) & (rng.random(n) < 0.03)
    colour[lights] = rng.uniform(0.9, 1.0, (int(lights.sum()), 3))
    gradient = rng.normal(0, 0.15, (n, 2)) / np.maximum(radius, 4)[:, None]
    texture = rng.uniform(0, 0.12, (n, 2)) * (~lights)[:, None]
    gradient[0] = 0  # disc 0 doubles as the background wherever no disc falls

    labels = np.zeros((big, big), np.int32)
    shift = 4  # cv2 fixed-point sub-pixel bits
    cx = np.round(centre * ss * (1 << shift)).astype(np.int64)
    cr = np.round(radius * ss * (1 << shift)).astype(np.int64)
    for i in range(n):
        cv2.circle(labels, (int(cx[i, 0]), int(cx[i, 1])), int(cr[i]), i, -1, cv2.LINE_8, shift)

    fine = cv2.GaussianBlur(rng.standard_normal((big, big)).astype(np.float32), (0, 0), 1.0 * ss)
    coarse = cv2.GaussianBlur(rng.standard_normal((big, big)).astype(np.float32), (0, 0), 4.0 * ss)
    fine /= fine.std() + 1e-8
    coarse /= coarse.std() + 1e-8

    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) / ss
    shade = (gradient[labels, 0] * (xx - centre[labels, 0]) + gradient[labels, 1] * (yy - centre[labels, 1]))
    tex = texture[labels, 0] * fine + texture[labels, 1] * coarse
    img = colour[labels] * (1 + shade + tex)[..., None]
    img = cv2.resize(img.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(img, 0, 1).astype(np.float32)


def sharp_source(rng: np.random.Generator, size: int, split: str = "train") -> tuple[np.ndarray, str]:
    """A sharp display-space image (float32 HxWx3 in [0,1]) for a split, and its source name."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {SPLITS}")
    if rng.random() < PHOTO_PROBABILITY:
        names = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
        name = names[int(rng.integers(len(names)))]
        return _random_crop(rng, load_photo(name), size), name
    return dead_leaves(rng, size), "dead_leaves"


def to_linear(img: np.ndarray, gain: float = 1.0, highlight: float = 1.0) -> np.ndarray:
    """Display [0,1] -> linear light: undo gamma 2.2, apply an exposure gain,
    and multiply near-white pixels by up to `highlight` so they exceed 1.0."""
    lin = np.power(img, SOURCE_GAMMA, dtype=np.float32) * np.float32(gain)
    if highlight != 1.0:
        w = np.clip((img.max(axis=2, keepdims=True) - 0.85) / 0.15, 0, 1)
        lin *= 1 + np.float32(highlight - 1) * (w * w * (3 - 2 * w))
    return lin


# --------------------------------------------------------------------------- camera

def trajectory_from_poses(poses: np.ndarray, size: int, focal: float | None = None) -> np.ndarray:
    """Homographies (n, 3, 3) from camera poses (n, 5) = (tx, ty [px], roll, yaw, pitch [rad]).

    Each homography maps a pixel of the output frame at that instant to the
    scene (reference-frame) pixel it sees: a rotation about the optical axis
    through the image centre with focal length `focal` (default: size), then
    a translation.
    """
    poses = np.asarray(poses, np.float64)
    f = float(size) if focal is None else float(focal)
    c = (size - 1) / 2.0
    K = np.array([[f, 0, c], [0, f, c], [0, 0, 1]])
    Kinv = np.linalg.inv(K)
    out = np.empty((len(poses), 3, 3))
    for i, (tx, ty, roll, yaw, pitch) in enumerate(poses):
        cr, sr = math.cos(roll), math.sin(roll)
        cy, sy = math.cos(yaw), math.sin(yaw)
        cp, sp = math.cos(pitch), math.sin(pitch)
        Rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        Rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        T = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        H = T @ K @ Rz @ Ry @ Rx @ Kinv
        out[i] = H / H[2, 2]
    return out


def blur_extent(traj: np.ndarray, size: int) -> float:
    """Blur length in px: the largest path-bounding-box diagonal of a 5x5 grid of points."""
    g = np.linspace(0, size - 1, 5)
    pts = np.stack([*np.meshgrid(g, g), np.ones((5, 5))], -1).reshape(-1, 3)
    p = np.einsum("nij,kj->nki", traj, pts)
    xy = p[..., :2] / p[..., 2:]
    return float(np.linalg.norm(xy.max(axis=0) - xy.min(axis=0), axis=-1).max())


def _subframes(rng, extent: float) -> int:
    n = max(int(rng.integers(SUBFRAMES[0], SUBFRAMES[1] + 1)), math.ceil(extent) + 1)
    return min(MAX_SUBFRAMES, n | 1)  # odd: a true middle sub-frame


def _random_extent(rng, size: int, lo_hi=BLUR_EXTENT_PX) -> float:
    if rng.random() < NEAR_SHARP_PROBABILITY:
        return float(rng.uniform(*NEAR_SHARP_EXTENT_PX)) * size / 256
    return _log_uniform(rng, *lo_hi) * size / 256


def camera_trajectory(rng: np.random.Generator, size: int, extent: float | None = None,
                      n_sub: int | None = None) -> np.ndarray:
    """Random smooth camera shake as homographies (n_sub, 3, 3), middle one the identity.

    Each pose parameter follows a random cubic in time plus a small wobble;
    in-plane rotation and yaw/pitch get random shares of the motion, so the
    blur differs across the frame. The whole path is scaled so that
    :func:`blur_extent` is `extent` px (default: drawn, mostly 5..25 px at
    256, 10% near-sharp). `n_sub` defaults to 15..31, raised so that
    sub-frames are about 1 px apart.
    """
    extent = _random_extent(rng, size) if extent is None else float(extent)
    n_sub = _subframes(rng, extent) if n_sub is None else int(n_sub)
    if n_sub < 1:
        raise ValueError(f"n_sub must be >= 1, got {n_sub}")
    t = np.linspace(-0.5, 0.5, n_sub) if n_sub > 1 else np.zeros(1)

    coef = rng.normal(0, 1, (5, 3)) * np.array([1.0, 0.6, 0.4])  # mostly linear, some curve
    wobble = rng.normal(0, 0.08, (5, 2))
    freq = rng.uniform(1, 3, (5, 2))
    phase = rng.uniform(0, 2 * np.pi, (5, 2))
    curves = coef @ np.stack([t, t ** 2, t ** 3])
    curves += np.einsum("pk,pkn->pn", wobble, np.sin(2 * np.pi * freq[..., None] * t + phase[..., None]))
    curves -= curves[:, [n_sub // 2]]  # middle sub-frame at rest

    # share of motion: translation px, roll (corner arc ~ size*0.7 px/rad), yaw/pitch (~ size px/rad)
    shares = np.array([1.0, 1.0, rng.uniform(0, 0.8), rng.uniform(0, 0.3), rng.uniform(0, 0.3)])
    unit = curves * (shares / np.array([1.0, 1.0, 0.7 * size, size, size]))[:, None]
    scale = 1.0
    for _ in range(3):  # homographies are nearly linear in the pose: rescale to the target
        e = blur_extent(trajectory_from_poses((unit * scale).T, size), size)
        if e < 1e-9:
            break
        scale *= extent / e
    return trajectory_from_poses((unit * scale).T, size)


# --------------------------------------------------------------------------- sensor

@dataclass(frozen=True)
class CameraResponse:
    """Camera response: linear [0,1] -> display [0,1], gamma (linear toe below
    `toe`, as sRGB) then an S-curve. gamma=1, s_curve=0 is the identity."""

    gamma: float = 2.2
    s_curve: float = 0.0
    toe: float = RESPONSE_TOE

    def __call__(self, linear: np.ndarray) -> np.ndarray:
        x = np.clip(linear, 0, 1).astype(np.float32, copy=False)
        g = np.float32(1 / self.gamma)
        toe = np.float32(self.toe)
        y = np.where(x < toe, x * toe ** (g - 1), np.power(np.maximum(x, toe), g))
        # y - s*sin(2*pi*y)/(2*pi): fixes 0 and 1, monotone for s < 1, steeper mid-tones
        return y - np.float32(self.s_curve / (2 * np.pi)) * np.sin(np.float32(2 * np.pi) * y)


def random_response(rng: np.random.Generator) -> CameraResponse:
    """A random camera response within GAMMA and S_CURVE."""
    return CameraResponse(float(rng.uniform(*GAMMA)), float(rng.uniform(*S_CURVE)))


def random_noise(rng: np.random.Generator) -> tuple[float, float]:
    """Poisson-Gaussian noise parameters (a, b): variance = a * signal + b, linear light."""
    return _log_uniform(rng, *NOISE_SHOT), _log_uniform(rng, *NOISE_READ) ** 2


def _finish(linear, rng, response, noise) -> np.ndarray:
    """Sensor: saturate, add noise (Gaussian approximation of Poisson-Gaussian), respond, quantise."""
    x = np.clip(linear, 0, 1)
    a, b = noise
    if a > 0 or b > 0:
        x = x + np.sqrt(a * x + b) * rng.standard_normal(x.shape, dtype=np.float32)
    y = response(np.clip(x, 0, 1))
    return np.clip(np.rint(y * 255), 0, 255).astype(np.uint8)


def _resolve(rng, response, noise):
    response = random_response(rng) if response is None else response
    noise = random_noise(rng) if noise is None else tuple(noise)
    return response, noise


def render_pair(sharp_linear: np.ndarray, traj: np.ndarray, rng: np.random.Generator, *,
                response: CameraResponse | None = None, noise: tuple[float, float] | None = None,
                size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render (sharp, blurry) uint8 RGB pairs of camera shake.

    `sharp_linear` is a linear-light float32 image, square; when larger than
    `size` its centre is the frame and the rest a margin that the moving
    camera may see. `traj` comes from :func:`camera_trajectory`. Sub-frames
    are warped bilinearly (BORDER_REFLECT past the margin) and averaged in
    linear light; `response`/`noise` default to random ones from `rng`
    (``noise=(0, 0)`` for none). The sharp image is the middle sub-frame,
    without noise.
    """
    src = np.ascontiguousarray(sharp_linear, dtype=np.float32)
    size = src.shape[0] if size is None else int(size)
    m = (src.shape[0] - size) / 2.0
    response, noise = _resolve(rng, response, noise)
    shift = np.array([[1, 0, m], [0, 1, m], [0, 0, 1]])
    acc = np.zeros((size, size, 3), np.float32)
    for H in traj:
        acc += cv2.warpPerspective(src, shift @ H, (size, size),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT)
    acc /= len(traj)
    mid = cv2.warpPerspective(src, shift @ traj[len(traj) // 2], (size, size),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)
    return _finish(mid, rng, response, (0.0, 0.0)), _finish(acc, rng, response, noise)


def point_lights(size: int, spacing: int = 32, value: float = 1.0, radius: float = 0.0,
                 background: float = 0.0) -> np.ndarray:
    """Linear-light test chart: a grid of point lights (every `spacing` px, offset spacing/2).

    radius 0 gives single pixels; otherwise discs. `value` above 1 makes
    lights that saturate when blurred.
    """
    img = np.full((size, size, 3), background, np.float32)
    for y in range(spacing // 2, size, spacing):
        for x in range(spacing // 2, size, spacing):
            if radius <= 0:
                img[y, x] = value
            else:
                cv2.circle(img, (x, y), int(round(radius)), (value,) * 3, -1)
    return img


# --------------------------------------------------------------------------- objects

@dataclass(frozen=True)
class MovingObject:
    """A foreground sprite on a linear-light canvas: premultiplied RGBA (d, d, 4),
    centre at mid-exposure (x, y) px, path centre + velocity*t + accel*t^2 and
    rotation spin*t rad for t in [-1/2, 1/2]."""

    rgba: np.ndarray
    centre: tuple[float, float]
    velocity: tuple[float, float]
    accel: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0

    def position(self, t: float) -> tuple[float, float]:
        return (self.centre[0] + self.velocity[0] * t + self.accel[0] * t * t,
                self.centre[1] + self.velocity[1] * t + self.accel[1] * t * t)


def _shape_mask(rng, d: int) -> np.ndarray:
    """An antialiased disc, ellipse or polygon inscribed in a d x d square."""
    ss = 4
    mask = np.zeros((d * ss, d * ss), np.uint8)
    c = (d * ss) // 2
    r = 0.45 * d * ss
    kind = int(rng.integers(3))
    if kind == 0:
        cv2.circle(mask, (c, c), int(r), 255, -1)
    elif kind == 1:
        axes = (int(r), int(r * rng.uniform(0.4, 1.0)))
        cv2.ellipse(mask, (c, c), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    else:
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * rng.uniform(0.6, 1.0, k)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255)
    return cv2.resize(mask, (d, d), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def random_objects(rng: np.random.Generator, size: int, gain: float = 1.0, highlight: float = 1.0,
                   extent: float | None = None) -> list[MovingObject]:
    """One to four dead-leaves-textured objects with their own paths; the
    fastest moves `extent` px over the exposure (default log-uniform 5..35 px at 256)."""
    extent = _log_uniform(rng, *OBJECT_EXTENT_PX) * size / 256 if extent is None else float(extent)
    n = int(rng.integers(1, 5))
    objects = []
    for i in range(n):
        d = int(rng.integers(size // 6, int(size / 2.5) + 1))
        alpha = _shape_mask(rng, d)[..., None]
        rgb = to_linear(dead_leaves(rng, d, r_max=d / 2), gain, highlight)
        length = extent if i == 0 else extent * rng.uniform(0.3, 1.0)
        ang = rng.uniform(0, 2 * np.pi)
        vel = (length * math.cos(ang), length * math.sin(ang))
        acc = tuple(rng.normal(0, 0.15 * length, 2))
        objects.append(MovingObject(np.concatenate([rgb * alpha, alpha], 2).astype(np.float32),
                                    tuple(rng.uniform(0.1 * size, 0.9 * size, 2)), vel, acc,
                                    float(rng.uniform(-0.15, 0.15))))
    return objects


def _composite(canvas: np.ndarray, obj: MovingObject, t: float, pad: int) -> None:
    d = obj.rgba.shape[0]
    x, y = obj.position(t)
    x, y = x + pad - (d - 1) / 2, y + pad - (d - 1) / 2  # sprite's top-left on the canvas
    ix, iy = math.floor(x), math.floor(y)
    c = (d - 1) / 2
    M = cv2.getRotationMatrix2D((c, c), math.degrees(obj.spin * t), 1.0)
    M[:, 2] += (x - ix, y - iy)
    patch = cv2.warpAffine(obj.rgba, M, (d + 2, d + 2), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    h, w = canvas.shape[:2]
    y0, x0, y1, x1 = max(iy, 0), max(ix, 0), min(iy + d + 2, h), min(ix + d + 2, w)
    if y0 >= y1 or x0 >= x1:
        return
    p = patch[y0 - iy:y1 - iy, x0 - ix:x1 - ix]
    roi = canvas[y0:y1, x0:x1]
    roi *= 1 - p[..., 3:]
    roi += p[..., :3]


def render_object_pair(background_linear: np.ndarray, objects: list[MovingObject], n_sub: int,
                       rng: np.random.Generator, *, response: CameraResponse | None = None,
                       noise: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render (sharp, blurry) uint8 RGB pairs of objects moving over a still background.

    Objects are composited (in list order, later on top) at `n_sub` instants
    and averaged in linear light; background pixels no object ever covers are
    rendered identically in both images (apart from noise).
    """
    size = background_linear.shape[0]
    pad = max([o.rgba.shape[0] for o in objects], default=0) + 2
    response, noise = _resolve(rng, response, noise)
    bg = cv2.copyMakeBorder(np.ascontiguousarray(background_linear, np.float32),
                            pad, pad, pad, pad, cv2.BORDER_REFLECT)
    t_all = np.linspace(-0.5, 0.5, n_sub) if n_sub > 1 else np.zeros(1)
    acc = np.zeros_like(bg)
    mid = None
    for i, t in enumerate(t_all):
        frame = bg.copy()
        for obj in objects:
            _composite(frame, obj, float(t), pad)
        acc += frame
        if i == n_sub // 2:
            mid = frame
    acc /= n_sub
    crop = (slice(pad, pad + size), slice(pad, pad + size))
    return _finish(mid[crop], rng, response, (0.0, 0.0)), _finish(acc[crop], rng, response, noise)


# --------------------------------------------------------------------------- dataset

def make_pair(seed: int, split: str, index: int, size: int = 256,
              family: str = "shake") -> tuple[np.ndarray, np.ndarray, dict]:
    """Pair `index` of `split`: (sharp uint8 RGB, blurry uint8 RGB, metadata), fully
    determined by (seed, split, index, size, family)."""
    _check_family(family)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {SPLITS}")
    ss = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index))
    rng = np.random.default_rng(ss)
    gain = _log_uniform(rng, *GAIN)
    highlight = _log_uniform(rng, *HIGHLIGHT_BOOST)
    if family == "shake":
        margin = size // 8
        src, name = sharp_source(rng, size + 2 * margin, split)
        traj = camera_trajectory(rng, size)
        extent, n_sub = blur_extent(traj, size), len(traj)
        sharp, blurry = render_pair(to_linear(src, gain, highlight), traj, rng, size=size)
    else:
        src, name = sharp_source(rng, size, split)
        objects = random_objects(rng, size, gain, highlight)
        extent = max(math.hypot(*o.velocity) for o in objects)
        n_sub = _subframes(rng, extent)
        sharp, blurry = render_object_pair(to_linear(src, gain, highlight), objects, n_sub, rng)
    meta = {"source": name, "blur_extent_px": round(extent, 3), "subframes": n_sub,
            "psnr_db": round(_psnr(sharp, blurry), 4)}
    return sharp, blurry, meta


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_png(path: str, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    _write_atomic(path, buf.tobytes())


def _job(args) -> dict:
    out, seed, split, index, size, family = args
    sharp, blurry, meta = make_pair(seed, split, index, size, family)
    seq = f"{family}_{index // PAIRS_PER_SEQUENCE:04d}"
    frame = f"{index:06d}.png"
    for kind, img in (("sharp", sharp), ("blur", blurry)):
        d = os.path.join(out, split, seq, kind)
        os.makedirs(d, exist_ok=True)
        _write_png(os.path.join(d, frame), img)
    return {"split": split, "index": index, "sequence": seq, "frame": frame, **meta}


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _check_family(family) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid families: {', '.join(FAMILIES)}")


def _as_int(name, value) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return int(value.__index__())
    except (AttributeError, TypeError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def split_counts(pairs: int, test_fraction: float) -> dict[str, int]:
    """Pairs per split: round(pairs * test_fraction) for test, at least one when
    test_fraction > 0 and pairs >= 2, always at least one for train."""
    n_test = int(round(pairs * test_fraction))
    if test_fraction > 0 and pairs >= 2:
        n_test = max(1, n_test)
    n_test = min(n_test, pairs - 1)
    return {"train": pairs - n_test, "test": n_test}


def make_synthetic(out: str | os.PathLike, pairs: int, size: int = 256, seed: int = 0,
                   family: str = "shake", workers: int = 0, test_fraction: float = 0.1,
                   progress: bool = True, overwrite: bool = False) -> dict:
    """Write a GoPro-layout paired dataset; return a summary dict
    (pairs written per split, families, seed, elapsed seconds, mean blurry-vs-sharp PSNR).

    Files are byte-identical for a given (pairs, size, seed, family,
    test_fraction), whatever `workers` (processes; 0 or 1 = this process).
    Workers are spawned, so a calling script needs the usual
    ``if __name__ == "__main__":`` guard. The dataset is written beside ``out`` and appears
    only when complete; a non-empty ``out`` is refused unless ``overwrite``, which replaces it whole.
    """
    pairs = _as_int("pairs", pairs)
    size = _as_int("size", size)
    seed = _as_int("seed", seed)
    workers = _as_int("workers", workers)
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    if size < 64 or size % 64:
        raise ValueError(f"size must be a positive multiple of 64 (64, 128, 256, ...), got {size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    _check_family(family)
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    try:
        test_fraction = float(test_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"test_fraction must be a number in [0, 1), got {test_fraction!r}") from None
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")

    final = Path(out)
    staging = stage_folder(final, overwrite)
    try:
        summary = _write_dataset(os.fspath(staging), pairs, size, seed, family, workers, test_fraction, progress)
        publish_folder(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary["out"] = os.fspath(out)
    return summary


def _write_dataset(out: str, pairs, size, seed, family, workers, test_fraction, progress) -> dict:
    counts = split_counts(pairs, test_fraction)
    _write_atomic(os.path.join(out, "recipe.json"),
                  json.dumps(_recipe(pairs, size, seed, family, test_fraction, counts), indent=2).encode())

    jobs = [(out, seed, split, k, size, family) for split in SPLITS for k in range(counts[split])]
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=f"synthetic {family}", unit="pair", disable=not progress)
    metas = []
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork: cv2/torch thread pools in the parent
        with ctx.Pool(min(workers, len(jobs)), initializer=_worker_init) as pool:
            for meta in pool.imap_unordered(_job, jobs, chunksize=1):
                metas.append(meta)
                bar.update()
    else:
        for job in jobs:
            metas.append(_job(job))
            bar.update()
    bar.close()
    elapsed = time.perf_counter() - start

    metas.sort(key=lambda m: (SPLITS.index(m["split"]), m["index"]))
    _write_atomic(os.path.join(out, "manifest.jsonl"),
                  "".join(json.dumps(m, sort_keys=True) + "\n" for m in metas).encode())
    psnr = {s: [m["psnr_db"] for m in metas if m["split"] == s] for s in SPLITS}
    return {
        "out": out,
        "pairs": counts,
        "families": [family],
        "seed": seed,
        "size": size,
        "elapsed_s": round(elapsed, 3),
        "seconds_per_pair": round(elapsed / len(jobs), 4),
        "mean_psnr_db": round(float(np.mean([m["psnr_db"] for m in metas])), 3),
        "mean_psnr_db_per_split": {s: round(float(np.mean(v)), 3) for s, v in psnr.items() if v},
    }


def _recipe(pairs, size, seed, family, test_fraction, counts) -> dict:
    return {
        "generator": GENERATOR,
        "seed": seed,
        "family": family,
        "pairs": pairs,
        "size": size,
        "test_fraction": test_fraction,
        "splits": counts,
        "layout": "<split>/<family>_<NNNN>/{sharp,blur}/<index>.png, "
                  f"{PAIRS_PER_SEQUENCE} pairs per sequence, 8-bit RGB PNG",
        "seeding": "np.random.SeedSequence(seed, spawn_key=(split_id, index)), split_id train=0 test=1",
        "sources": {
            "train_photos": list(TRAIN_PHOTOS),
            "test_photos": list(TEST_PHOTOS),
            "photo_probability": PHOTO_PROBABILITY,
            "dead_leaves": {"radius_density": "r^-3", "r_min_px": 2.0, "r_max": "size/3",
                            "coverage": 4.0, "supersampling": 2},
        },
        "linearisation": {"source_gamma": SOURCE_GAMMA, "exposure_gain": GAIN,
                          "highlight_boost": HIGHLIGHT_BOOST},
        "blur": {
            "shake_extent_px_at_256": BLUR_EXTENT_PX,
            "object_extent_px_at_256": OBJECT_EXTENT_PX,
            "near_sharp_probability": NEAR_SHARP_PROBABILITY,
            "near_sharp_extent_px_at_256": NEAR_SHARP_EXTENT_PX,
            "subframes": SUBFRAMES, "max_subframes": MAX_SUBFRAMES,
            "warp": "cv2 bilinear, BORDER_REFLECT, margin size/8",
        },
        "response": {"gamma": GAMMA, "s_curve": S_CURVE, "linear_toe": RESPONSE_TOE},
        "noise": {"shot_variance_per_unit": NOISE_SHOT, "read_std": NOISE_READ,
                  "sharp_image": "noise-free"},
    }
