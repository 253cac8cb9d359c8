"""In-memory containers for FLAME-format assets.

These are plain numpy containers: the loaders in :mod:`decalite.flame.assets` fill them from the licensed
FLAME 2020 files or from decalite's generated head (same file formats), the writers in
:mod:`decalite.flame.asset_writer` serialise them, and :class:`decalite.flame.layer.FlameLayer` copies them
into torch buffers.

Conventions (pinned by tests): metres; right-handed; +y up; +z out of the face towards the camera (the
camera looks down -z); +x towards the subject's left (the viewer's right); angles in radians, axis-angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: FLAME stores shape components first, then expression components, in one ``shapedirs`` array.
N_SHAPE_TOTAL = 300
#: Joint order of FLAME's kinematic tree.
JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
#: Number of yaw bins of the dynamic (jaw contour) landmarks: -39..+39 degrees.
N_YAW_BINS = 79
N_CONTOUR = 17
N_STATIC = 51
N_LANDMARKS = 68


@dataclass(frozen=True, eq=False)
class FlameModelData:
    """The arrays of ``generic_model.pkl``.

    Attributes:
        v_template: (V, 3) float64 template vertices in metres.
        faces: (F, 3) int64 triangle vertex indices (counter-clockwise seen from outside).
        shapedirs: (V, 3, S + E) float64; the first ``N_SHAPE_TOTAL`` (300) components are identity shape,
            the rest (100 in FLAME 2020) expression.
        posedirs: (V, 3, 9 * (J - 1)) float64 pose correctives, driven by (R - I) of every joint but the root.
        j_regressor: (J, V) float64 dense joint regressor.
        parents: (J,) int64 kinematic parents, ``parents[0] == -1``.
        lbs_weights: (V, J) float64 skinning weights, rows sum to 1.
        expression_names: names of the expression components, in order (an optional ``expression_names`` list of
            the file; decalite's heads write it, FLAME 2020's PCA expressions have none: empty).
        jaw_open_angle: the jaw rotation (radians about +x) that equals ARKit's jawOpen = 1, for a head whose
            expressions are ARKit blendshapes with jawOpen folded into the jaw joint (the ICT head); else None.
        source: where the arrays came from (a path), for messages.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    parents: np.ndarray
    lbs_weights: np.ndarray
    expression_names: tuple[str, ...] = ()
    jaw_open_angle: float | None = None
    source: str = ""

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def n_joints(self) -> int:
        return int(self.parents.shape[0])

    @property
    def n_shape_total(self) -> int:
        return N_SHAPE_TOTAL

    @property
    def n_exp_total(self) -> int:
        return int(self.shapedirs.shape[2]) - N_SHAPE_TOTAL


@dataclass(frozen=True, eq=False)
class LandmarkEmbedding:
    """Barycentric landmark embedding (``landmark_embedding.npy``).

    Attributes:
        static_faces: (51,) int64 face index of the 51 inner-face landmarks (iBUG 18..68).
        static_bary: (51, 3) float64 barycentric coordinates.
        dynamic_faces: (79, 17) int64 face index of the 17 jaw-contour landmarks per yaw bin. In DECA's
            layout (``landmark_embedding.npy``, and decalite's generated head) bin ``b`` holds the contour for a
            head yaw of ``+b`` degrees for ``b <= 39`` and ``-(b - 39)`` degrees for ``b > 39`` (yaw: rotation
            about +y, positive turning the face towards +x); see :func:`decalite.flame.lbs.yaw_to_contour_bin`.
        dynamic_bary: (79, 17, 3) float64.
        full_faces: (68,) int64 face index of the full 68-point 3D landmarks.
        full_bary: (68, 3) float64.
        source: where the arrays came from (a path), for messages.
    """

    static_faces: np.ndarray
    static_bary: np.ndarray
    dynamic_faces: np.ndarray
    dynamic_bary: np.ndarray
    full_faces: np.ndarray
    full_bary: np.ndarray
    source: str = ""


@dataclass(frozen=True, eq=False)
class AlbedoData:
    """A linear albedo model in UV space, normalised to RGB in [0, 1].

    ``albedo(code) = mean + basis @ code`` per texel.

    Attributes:
        mean: (H, W, 3) float32 RGB mean albedo, row 0 at the top of the UV image (v = 1).
        basis: (H, W, 3, N) float32 RGB components.
        source: where the arrays came from (a path), for messages.
    """

    mean: np.ndarray
    basis: np.ndarray
    source: str = ""

    @property
    def n_components(self) -> int:
        return int(self.basis.shape[3])
