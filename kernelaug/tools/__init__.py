"""Uses of a trained model: blur transfer, offline augmentation, kernel coverage, pictures."""
