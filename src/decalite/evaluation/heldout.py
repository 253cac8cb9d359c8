"""The held-out identities of a synthetic dataset as scoring batches, and what one of them looks like
reconstructed (meshes and a comparison grid): what ``decalite-evaluate`` scores and writes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import torch

from decalite.data.datamodule import IdentityGroupDataset, collate_groups

#: Identity groups per scoring batch.
GROUPS_PER_BATCH = 4


def heldout_dataset(root: str | Path, k: int, image_size: int) -> IdentityGroupDataset:
    """The ``root/val`` split, ``k`` images per identity, centre crops of ``image_size`` (no augmentation)."""
    return IdentityGroupDataset(str(Path(root) / "val" / "*.tar"), k=k, image_size=image_size, train=False)


def heldout_batches(root: str | Path, k: int, image_size: int, max_identities: int,
                    groups_per_batch: int = GROUPS_PER_BATCH) -> Iterator[dict]:
    """The first ``max_identities`` held-out identities as collated batches of ``groups_per_batch`` groups:
    ``images`` (G, K, 3, S, S) with the data's ground truth."""
    groups = itertools.islice(iter(heldout_dataset(root, k, image_size)), int(max_identities))
    return (collate_groups(list(chunk)) for chunk in iter(lambda: list(itertools.islice(groups, groups_per_batch)), []))


@torch.no_grad()
def write_heldout(deca, batch: dict, folder: Path) -> None:
    """One held-out identity (the first group of ``batch``) reconstructed by the encoder: per image the posed
    mesh (PLY), the predicted and true neutral heads, and a grid (input | render | coarse shape | detailed shape |
    true detailed shape)."""
    from torchvision.utils import make_grid, save_image

    from decalite.apps.export import write_mesh

    folder.mkdir(parents=True, exist_ok=True)
    images = batch["images"][0]  # (1, K, 3, S, S) -> (K, 3, S, S)
    code = deca.encode(images)
    out = deca.decode(code)
    faces = deca.flame.faces.numpy()
    name = batch["identity"][0]
    for i, verts in enumerate(out.vertices.numpy()):
        write_mesh(folder / f"{name}_{i}.ply", verts, faces)
    write_mesh(folder / f"{name}_neutral_pred.ply", deca.flame(shape=code.shape[:1]).vertices[0].numpy(), faces)
    true_shape = batch["shape"][0, :1, : deca.flame.n_shape]
    write_mesh(folder / f"{name}_neutral_true.ply", deca.flame(shape=true_shape).vertices[0].numpy(), faces)
    shade, fragments = deca.renderer.render_shape, out.render.fragments  # one rasterisation for every column
    shapes = shade(out.vertices, code.cam, displacement=out.displacement, background=images, fragments=fragments)
    columns = [images, out.render.image.clamp(0, 1), shapes.coarse, shapes.detailed]
    if "disp" in batch:
        true = batch["disp"][0]
        true = torch.nn.functional.interpolate(true, size=out.displacement.shape[-2:], mode="bilinear")
        columns.append(shade(out.vertices, code.cam, displacement=true, background=images,
                             fragments=fragments).detailed)
    grid = make_grid(torch.stack(columns, 1).flatten(0, 1), nrow=len(columns), padding=2, pad_value=1.0)
    save_image(grid, folder / f"{name}_grid.png")
