"""Joints, joint regressor and skinning weights of the generated head.

FLAME's kinematic tree: global (root, at the base of the neck) -> neck (head pivot) -> jaw, left eye, right eye.
The jaw carries the lower lip, the chin and the lower cheeks up to a line from the mouth corners to the jaw
hinges, with a hard boundary at the mouth slit so the mouth opens; eyeballs follow their eye joints rigidly.
"""

from __future__ import annotations

import numpy as np

from decalite.flame.generated.geometry import (
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    HeadTemplate,
    smoothstep,
    soft_neckness,
)

PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)
JAW_HINGE = np.array([0.066, -0.012, -0.004])  # the +x hinge; the other mirrors it
NECK_PIVOT = np.array([0.056, -0.045, -0.028])  # the head turns about the midpoint of this and its mirror


def _nearest_pair(v: np.ndarray, allowed: np.ndarray, point: np.ndarray, k: int = 6) -> np.ndarray:
    """(V,) bool: the k allowed vertices nearest to ``point`` and the k nearest to its mirror image."""
    sel = np.zeros(len(v), dtype=bool)
    for side in (1.0, -1.0):
        dist = np.linalg.norm(v - point * [side, 1.0, 1.0], axis=1)
        dist[~allowed] = np.inf
        sel[np.argsort(dist)[:k]] = True
    return sel


def joint_regressor(t: HeadTemplate) -> np.ndarray:
    """(5, V) joint regressor: each joint is the mean of a symmetric set of template vertices."""
    v = t.vertices
    skin = t.part == 0
    rows = np.zeros((5, len(v)))
    root = skin & (t.neckness > 0.9) & (v[:, 1] > -0.13) & (v[:, 1] < -0.11)
    neck = _nearest_pair(v, skin, NECK_PIVOT)
    jaw = _nearest_pair(v, skin, JAW_HINGE)
    for j, sel in enumerate([root, neck, jaw, t.part == 1, t.part == 2]):
        rows[j, sel] = 1.0 / sel.sum()
    return rows


def jaw_influence(t: HeadTemplate) -> np.ndarray:
    """(V,) in [0, 1]: how much each vertex follows the jaw."""
    v = t.vertices
    x, y, z = np.abs(v[:, 0]), v[:, 1], v[:, 2]
    # Boundary: the mouth line between the corners, then a line up to the jaw hinge.
    ramp = np.clip((x - MOUTH_HALF_WIDTH) / (JAW_HINGE[0] - MOUTH_HALF_WIDTH), 0.0, 1.0)
    y_line = MOUTH_Y + ramp * (JAW_HINGE[1] - MOUTH_Y)
    band = 1e-4 + 0.25 * np.clip(x - MOUTH_HALF_WIDTH, 0.0, None)
    w = smoothstep(0.0, 1.0, (y_line - y) / band)
    # Fade out under the chin over a few centimetres (a softer version of the head/neck split), so the
    # skin between chin and throat stretches instead of tearing when the mouth opens.
    w *= 1.0 - smoothstep(0.35, 0.85, soft_neckness(t.neckness))
    w *= smoothstep(-0.045, -0.005, z)
    w[t.lower_lip] = 1.0
    w[t.part != 0] = 0.0
    cavity = t.part == 3
    w[cavity & t.lower_lip] = 1.0
    # The slit's corners are shared by both lips, and so is the cavity extruded from them.
    w[t.mouth_corners] = 0.5
    w[cavity & np.isin(t.cavity_source, t.mouth_corners)] = 0.5
    return w


def skinning_weights(t: HeadTemplate) -> np.ndarray:
    """(V, 5) skinning weights, rows sum to 1."""
    v = t.vertices
    w = np.zeros((len(v), 5))
    root = (1.0 - smoothstep(-0.15, -0.07, v[:, 1])) * (t.part == 0)
    jaw = jaw_influence(t) * (1.0 - root)
    w[:, 0] = root
    w[:, 2] = jaw
    w[:, 1] = 1.0 - root - jaw
    for e in (1, 2):
        sel = t.part == e
        w[sel] = 0.0
        w[sel, 2 + e] = 1.0
    return w
