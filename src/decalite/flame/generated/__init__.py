"""decalite's generated FLAME-format head: the embedded default when no licensed FLAME folder is configured.

``generate_head(seed)`` builds, deterministically, every asset FLAME and DECA use (model, landmark embedding,
UV layout, UV masks, albedo basis); ``write_generated_head(out_dir, seed)`` writes them in the same file formats
as the real files, so ``decalite.flame.assets.load_flame_assets`` (and other FLAME tools) read both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decalite.flame.generated.appearance import albedo_model, uv_masks
from decalite.flame.generated.bases import (
    EXPRESSION_NAMES,
    SHAPE_NAMES,
    expression_basis,
    pose_correctives,
    shape_basis,
    tame_folds,
)
from decalite.flame.generated.geometry import build_template
from decalite.flame.generated.landmarks import landmark_embedding
from decalite.flame.generated.rigging import PARENTS, joint_regressor, skinning_weights
from decalite.flame.model_data import (
    AlbedoData,
    FlameModelData,
    LandmarkEmbedding,
)
from decalite.types import UVLayout

__all__ = ["GeneratedHead", "generate_head", "write_generated_head", "EXPRESSION_NAMES", "SHAPE_NAMES", "GENERATOR_VERSION",
           "GENERATED_README", "GENERATED_MARKER"]

#: Bumped whenever the generator's output changes, so cached folders are regenerated.
GENERATOR_VERSION = 6  # v6: generic_model.pkl names its expression components (v5: fold-free within +-3 sigma)
#: The file a written generated head carries, and the text it starts with (how a folder is recognised).
GENERATED_README = "README.txt"
GENERATED_MARKER = "decalite generated FLAME-format head"


@dataclass(frozen=True)
class GeneratedHead:
    """All assets of a generated head. Masks are (256, 256) float32 in {0, 1}."""

    model: FlameModelData
    embedding: LandmarkEmbedding
    uv: UVLayout
    face_mask: np.ndarray
    face_eye_mask: np.ndarray
    albedo: AlbedoData
    seed: int


def generate_head(seed: int = 0, albedo_size: int = 128, n_albedo: int = 50) -> GeneratedHead:
    """Generate the head. The template is fixed; ``seed`` draws the random parts of the bases."""
    rng = np.random.default_rng(seed)
    t = build_template()
    j_reg = joint_regressor(t)
    shapedirs = np.concatenate([tame_folds(t, shape_basis(t, rng)), tame_folds(t, expression_basis(t, rng))], axis=-1)
    model = FlameModelData(
        v_template=t.vertices,
        faces=t.faces,
        shapedirs=shapedirs,
        posedirs=pose_correctives(t, rng),
        j_regressor=j_reg,
        parents=PARENTS.copy(),
        lbs_weights=skinning_weights(t),
        expression_names=EXPRESSION_NAMES,
        source=f"generated(seed={seed})",
    )
    neck_joint = j_reg[1] @ t.vertices
    embedding = landmark_embedding(t, pivot=neck_joint)
    face_mask, face_eye_mask = uv_masks(t)
    return GeneratedHead(
        model=model,
        embedding=embedding,
        uv=UVLayout(vertices=t.vertices, faces=t.faces, verts_uvs=t.verts_uvs, faces_uvs=t.faces_uvs),
        face_mask=face_mask,
        face_eye_mask=face_eye_mask,
        albedo=albedo_model(t, rng, size=albedo_size, n_components=n_albedo),
        seed=seed,
    )


def write_generated_head(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a complete FLAME-format asset folder for the generated head. Returns the folder."""
    from decalite.flame import asset_writer as w

    head = generate_head(seed)
    readme = (
        f"{GENERATED_MARKER} "
        f"(generator version {GENERATOR_VERSION}, seed {seed}).\n"
        "Synthetic: not the licensed FLAME model. Same file formats and conventions as FLAME 2020:\n"
        "metres, +y up, +z towards the camera, +x to the subject's left, radians.\n"
    )
    return w.write_asset_folder(out_dir, head.model, head.embedding, head.uv, head.face_mask, head.face_eye_mask,
                                head.albedo, readme)
