"""Deblurring networks trained with the augmentation, their training, evaluation and benchmark."""
