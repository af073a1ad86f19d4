"""The shipped models and banks: load offline by name, match each other, and the default is the real camera."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kernelaug as ka
from kernelaug.models.pretrained import DEFAULT_MODEL, PRETRAINED


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_every_shipped_model_and_bank_load_offline_and_match(name):
    model = ka.load_model(name)        # SHA-256 of the file checked against the entry
    bank = ka.resolve_bank(name)
    bank.check(model)
    assert len(bank) > 0 and bank.code_shape == model.code_shape(bank.crop_size, bank.crop_size)
    codes = torch.from_numpy(bank.sample(2, rng=0))
    sharp = torch.rand(2, 3, bank.crop_size, bank.crop_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        blurred = model.apply(sharp, codes)
    assert torch.isfinite(blurred).all() and blurred.shape == sharp.shape


def test_gopro_small_loads_by_name_and_its_card_names_the_real_data():
    model = ka.load_model("gopro-small")
    assert model.config.psf_size == 47
    assert "GoPro" in model.provenance["data"] and "Nah" in model.provenance["data"]
    aug = ka.LearnedBlur("gopro-small", seed=0)
    assert aug.model.sha256 == model.sha256 and str(aug.bank.path).endswith("gopro-small.bank.h5")
    image = (np.random.default_rng(0).uniform(0, 255, (64, 64, 3))).astype(np.uint8)
    out = aug(image)
    assert out.dtype == np.uint8 and out.shape == image.shape


def test_the_default_model_is_used_where_none_is_named():
    aug = ka.LearnedBlur(seed=0)
    assert aug.model.sha256 == ka.load_model(DEFAULT_MODEL).sha256
    assert str(aug.bank.path).endswith(f"{DEFAULT_MODEL}.bank.h5")


def test_a_shipped_bank_refuses_the_other_model():
    with pytest.raises(ValueError):
        ka.resolve_bank("gopro-small").check(ka.load_model("synth-small"))
