"""What decalite-reconstruct writes per face (``save.*``): meshes, texture, codes, landmarks, pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from decalite.apps.export import (
    extract_texture,
    now_landmarks,
    save_png,
    write_arkit_json,
    write_mesh,
    write_textured_obj,
)
from decalite.apps.gltf import export_glb
from decalite.apps.reconstruct.coordinates import photo_landmarks
from decalite.apps.reconstruct.faces import Face
from decalite.apps.reconstruct.visuals import _vis_grid, _vis_original
from decalite.config import SaveConfig
from decalite.flame.arkit import is_arkit_head
from decalite.flame.assets import FlameAssets
from decalite.geometry.camera import orthographic_project
from decalite.io.codes import save_codes
from decalite.io.images import InputError
from decalite.model.deca import DECA
from decalite.render.uv_space import dense_detail_mesh
from decalite.types import FaceCode


def write_face(out_dir: Path, face: Face, deca: DECA, assets: FlameAssets, code: FaceCode, out, b: int, save: SaveConfig,
               now: bool) -> list[str]:
    """Write every requested output of face ``b`` of a decoded batch. Returns the files written."""
    folder = out_dir / face.name
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    name = face.name
    verts = out.vertices[b].detach().cpu().numpy()
    faces_np = deca.renderer.faces.cpu().numpy()
    image = torch.from_numpy(face.crop).permute(2, 0, 1).float().div(255.0)
    uv = deca.renderer.uv
    with torch.no_grad():
        v = out.vertices[b : b + 1]
        if out.render is not None and out.render.uv_positions is not None:  # the render's detail path made them
            uv_pos, uv_norm = out.render.uv_positions[b : b + 1], out.render.uv_normals[b : b + 1]
        else:
            uv_pos, uv_norm = deca.renderer.coarse_uv_maps(v)
        disp = out.displacement[b : b + 1] if out.displacement is not None else torch.zeros_like(uv_pos[:, :1])
    if save.obj or save.gltf:  # the photo's texture where the face is seen, the albedo elsewhere
        with torch.no_grad():
            proj = orthographic_project(uv_pos.permute(0, 2, 3, 1).reshape(1, -1, 3), code.cam[b : b + 1])
            proj = proj.reshape(1, *uv_pos.shape[2:], 3).permute(0, 3, 1, 2)  # (1, U*U, 3) -> (1, 3, U, U)
            tex, visible = extract_texture(image[None].to(v.device), proj, uv_norm, uv.valid)
            if out.albedo is not None:
                tex = tex + out.albedo[b : b + 1] * (1 - visible)
    if save.gltf:
        files.append(folder / f"{name}.glb")
        export_glb(files[-1], deca.flame, deca.renderer, assets.uv, code.map(lambda t: t[b : b + 1]), tex[0].cpu(),
                   out.displacement[b : b + 1] if out.displacement is not None else None,
                   assets.model.expression_names)
    if save.obj:
        normal_map = out.render.uv_detail_normals[b] if out.render.uv_detail_normals is not None else uv_norm[0]
        files.append(folder / f"{name}.obj")
        write_textured_obj(files[-1], verts, assets.uv, tex[0], normal_map)
    if save.ply:
        files.append(folder / f"{name}.ply")
        write_mesh(files[-1], verts, faces_np)
    if save.dense:
        with torch.no_grad():
            detailed, _ = deca.renderer.detailed_uv_positions(v, disp)
        valid = (deca.renderer.face_eye_mask[0, 0] > 0.5) & (uv.valid[0, 0] > 0)
        dv, df, _ = dense_detail_mesh(detailed[0], valid, uv_norm[0])
        files.append(folder / f"{name}_detail.obj")
        write_mesh(files[-1], dv, df)
    if save.codes:
        extra = {}
        if face.crop_matrix is not None and face.photo is not None:
            extra["crop_matrix"] = np.asarray(face.crop_matrix, dtype=np.float64)  # photo pixels -> crop pixels
            extra["photo_size"] = np.array(face.photo.shape[:2], dtype=np.int64)  # (height, width)
        files.append(save_codes(folder / f"{name}_codes.npz", code, index=b, extra=extra))
    if save.landmarks:
        files.append(folder / f"{name}_lmk2d.txt")
        np.savetxt(files[-1], out.landmarks2d[b].detach().cpu().numpy(), fmt="%.6f",
                   header="68 x (x, y), image-normalised [-1, 1], +y down")
        files.append(folder / f"{name}_lmk3d.txt")
        np.savetxt(files[-1], out.landmarks3d[b].detach().cpu().numpy(), fmt="%.6f", header="68 x (x, y, z), metres")
        if face.crop_matrix is not None:
            files.append(folder / f"{name}_lmk2d_image.txt")
            np.savetxt(files[-1], photo_landmarks(face, out.landmarks2d[b].detach().cpu().numpy()), fmt="%.4f",
                       header="68 x (x, y), pixels of the original photo (pixel centres at integers), +y down")
    if save.vis:
        files.append(folder / f"{name}_vis.png")
        save_image(_vis_grid(face, image, out, deca, code, b), files[-1])
    if save.vis_original and face.crop_matrix is not None and face.photo is not None:
        files.append(folder / f"{name}_vis_original.png")
        with torch.no_grad():
            save_png(files[-1], _vis_original(face, out, b))
    if save.depth:
        depth, alpha = out.render.depth[b, 0], out.render.alpha[b, 0] > 0
        d = torch.zeros_like(depth)
        if alpha.any():
            lo, hi = depth[alpha].min(), depth[alpha].max()
            d[alpha] = 0.1 + 0.9 * (depth[alpha] - lo) / (hi - lo).clamp_min(1e-9)
        files.append(folder / f"{name}_depth.png")
        save_png(files[-1], d[None].repeat(3, 1, 1))
    if save.arkit and is_arkit_head(assets.model.expression_names) and assets.model.jaw_open_angle:
        files.append(folder / f"{name}_arkit.json")
        write_arkit_json(files[-1], code.exp[b : b + 1].detach().cpu(), assets.model.expression_names,
                         code.pose[b : b + 1, 3:6].detach().cpu(), assets.model.jaw_open_angle)
    if now:
        with torch.no_grad():
            neutral = deca.flame(shape=code.shape[b : b + 1])
        files.append(folder / f"{name}_now.obj")
        write_mesh(files[-1], neutral.vertices[0].cpu().numpy(), faces_np)
        files.append(folder / f"{name}_now_lmk7.npy")
        np.save(files[-1], now_landmarks(neutral.landmarks3d[0].cpu().numpy()))
    return [str(f) for f in files]


def check_output_dir(out_dir: Path) -> None:
    """Raise InputError naming the folder when it cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise InputError(out_dir, f"output folder is not writable ({exc.strerror}); choose another output=") from None
