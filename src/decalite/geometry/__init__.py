"""Differentiable geometry helpers: spherical-harmonics lighting and the orthographic camera."""
