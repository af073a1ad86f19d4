"""Thin adapters of :class:`kernelaug.LearnedBlur` for augmentation frameworks.

Each submodule imports its framework itself and holds no blur logic; importing ``kernelaug`` (or
this package) imports none of them:

* :mod:`kernelaug.integrations.albumentations` -- ``LearnedBlur``, an Albumentations 2.x
  ``ImageOnlyTransform`` (``A.Compose``, ``A.OneOf``, ``A.to_dict`` / ``A.from_dict``);
* :mod:`kernelaug.integrations.imgaug` -- ``LearnedBlur``, an imgaug ``Augmenter``
  (``iaa.Sequential``, ``iaa.Sometimes``, ``to_deterministic``);
* :mod:`kernelaug.integrations.torchvision` -- ``LearnedBlur``, a ``torchvision.transforms.v2``
  ``Transform`` (``v2.Compose``, ``tv_tensors``).

Each module also documents, and offers as ``make_pair``, the recipe for (blurred input, sharp
target) pairs that stay aligned through shared geometric augmentation.
"""

__all__: list[str] = []
