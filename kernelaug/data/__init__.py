"""Paired datasets: folder layouts and readers, and the synthetic pair generator."""
