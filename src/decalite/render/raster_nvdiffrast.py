"""nvdiffrast (CUDA) backend with the same contract as :mod:`decalite.render.raster_torch`.

``rasterize(verts_clip (B, V, 4), faces (F, 3), (H, W)) -> rast (B, H, W, 4)`` holding
(u, v, z/w, triangle_id + 1), zeros where empty, image row 0 at NDC y = -1 -- which is nvdiffrast's own output
layout, so no conversion is needed. nvdiffrast is CUDA-only and optional: it is imported lazily (never at module
import time), and one ``nvdiffrast.torch.RasterizeCudaContext`` per CUDA device is created on first use.
The contexts are not picklable, so they are dropped when this object is pickled or deep-copied (the copy creates
its own on first use), which lets modules holding a rasterizer be copied or sent to DDP workers.

Install nvdiffrast on a GPU machine from its source archive with
``pip install --no-build-isolation <nvdiffrast source>`` (e.g. ``git+https://github.com/NVlabs/nvdiffrast``),
or the ``diffrp-nvdiffrast`` wheel.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

import torch

INSTALL_HINT = (
    "nvdiffrast is CUDA-only and optional; on a GPU machine install it from its source archive with "
    "`pip install --no-build-isolation <nvdiffrast source>` (e.g. git+https://github.com/NVlabs/nvdiffrast) "
    "or the `diffrp-nvdiffrast` wheel, or use backend='torch'"
)

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _load_nvdiffrast() -> Any | None:
    """``nvdiffrast.torch`` or None when it cannot be imported (cached)."""
    try:
        import nvdiffrast.torch as dr  # noqa: PLC0415 - optional, imported lazily on purpose
    except Exception:  # ImportError, or a broken build failing at import
        return None
    return dr


def nvdiffrast_importable() -> bool:
    """Whether ``nvdiffrast.torch`` can be imported (CUDA availability not checked)."""
    return _load_nvdiffrast() is not None


def is_available() -> bool:
    """True when CUDA is available and nvdiffrast can be imported."""
    return bool(torch.cuda.is_available()) and nvdiffrast_importable()


def _require_nvdiffrast() -> Any:
    dr = _load_nvdiffrast()
    if dr is None:
        raise RuntimeError(
            f"the nvdiffrast rasterizer backend needs nvdiffrast, which cannot be imported: {INSTALL_HINT}"
        )
    return dr


def _require_cuda(name: str, tensor: torch.Tensor) -> None:
    if not isinstance(tensor, torch.Tensor) or not tensor.is_cuda:
        device = tensor.device if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise RuntimeError(
            f"the nvdiffrast backend needs CUDA tensors, but {name} is on {device}; "
            "move the inputs to a CUDA device or use backend='torch' (decalite's CPU/any-device rasterizer)"
        )


def _face_orientation(verts_clip: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, F) sign of each face's signed area in NDC (+1 counter-clockwise with y up = front, -1 clockwise, 0 flat).

    Computed as the determinant of the (x, y, w) rows of the three clip-space vertices, which equals the NDC signed
    area times w0 * w1 * w2, so it has the NDC orientation for vertices in front of the camera and stays the
    standard homogeneous orientation test for triangles reaching behind it.
    """
    v = verts_clip[:, faces.long()].double()  # (B, F, 3, 4)
    x, y, w = v[..., 0], v[..., 1], v[..., 3]
    det = (
        x[..., 0] * (y[..., 1] * w[..., 2] - y[..., 2] * w[..., 1])
        - x[..., 1] * (y[..., 0] * w[..., 2] - y[..., 2] * w[..., 0])
        + x[..., 2] * (y[..., 0] * w[..., 1] - y[..., 1] * w[..., 0])
    )
    return torch.sign(det)


def _make_context(dr: Any, device: torch.device) -> Any:
    """``dr.RasterizeCudaContext(device)``, importing a freshly JIT-built plugin that nvdiffrast cannot find.

    nvdiffrast builds its CUDA plugin with ``torch.utils.cpp_extension.load`` and then imports it by name; recent
    torch (seen with 2.11 and nvdiffrast 0.3.3 on an H200) loads the built module without putting its build folder
    on ``sys.path``, so that import fails with ``ModuleNotFoundError: nvdiffrast_plugin_...`` although the plugin was
    built. The build folder is then added to ``sys.path`` and the context made again (the build is cached).
    """
    try:
        return dr.RasterizeCudaContext(device=device)
    except ModuleNotFoundError as err:
        name = err.name or ""
        if not name.startswith("nvdiffrast_plugin"):
            raise
        from torch.utils import cpp_extension

        build_dir = cpp_extension._get_build_directory(name, False)
        if build_dir in sys.path:
            raise
        log.warning("nvdiffrast built %s but could not import it; importing it from %s", name, build_dir)
        sys.path.append(build_dir)
        return dr.RasterizeCudaContext(device=device)


class NvdiffrastRasterizer:
    """Rasterizer on nvdiffrast's CUDA rasterizer, holding one lazily created context per CUDA device."""

    def __init__(self) -> None:
        self._contexts: dict[int, Any] = {}

    # -- pickling: contexts are CUDA/C++ objects; drop them and recreate lazily ---------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_contexts"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._contexts = {}

    def context(self, device: torch.device | str | int) -> Any:
        """The ``RasterizeCudaContext`` of a CUDA device, created on first request."""
        dr = _require_nvdiffrast()
        device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        if device.type != "cuda":
            raise RuntimeError(f"nvdiffrast contexts live on CUDA devices, not {device}")
        index = device.index if device.index is not None else torch.cuda.current_device()
        ctx = self._contexts.get(index)
        if ctx is None:
            ctx = _make_context(dr, torch.device("cuda", index))
            self._contexts[index] = ctx
        return ctx

    @staticmethod
    def _prepare(verts_clip: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _require_cuda("verts_clip", verts_clip)
        pos = verts_clip.to(dtype=torch.float32).contiguous()
        tri = faces.to(device=pos.device, dtype=torch.int32).contiguous()
        return pos, tri

    def rasterize(
        self,
        verts_clip: torch.Tensor,
        faces: torch.Tensor,
        resolution: tuple[int, int],
        cull_backfaces: bool = False,
    ) -> torch.Tensor:
        """Rasterize with nvdiffrast; same arguments and output as :func:`decalite.render.raster_torch.rasterize`.

        Args:
            verts_clip: (B, V, 4) CUDA clip-space vertices (cast to contiguous float32).
            faces: (F, 3) integer vertex indices (cast to contiguous int32 on the vertices' device).
            resolution: (H, W).
            cull_backfaces: drop triangles that are clockwise in NDC (y up). nvdiffrast itself draws both sides,
                so the culled faces are collapsed to an off-screen point for that batch item before rasterizing;
                triangle ids in the output still index the ORIGINAL ``faces``.

        Returns:
            rast: (B, H, W, 4) float32 = (u, v, z/w, triangle_id + 1), zeros where empty (``rast_db`` is dropped).
        """
        pos, tri = self._prepare(verts_clip, faces)
        dr = _require_nvdiffrast()
        ctx = self.context(pos.device)
        height, width = (int(r) for r in resolution)
        if cull_backfaces and tri.shape[0] > 0:
            # Unshare vertices: face f uses vertices 3f, 3f + 1, 3f + 2, so it can be removed per batch item
            # while keeping its index. A removed face becomes a zero-area point beyond the far plane, which
            # nvdiffrast never draws (and which receives no gradient).
            front = _face_orientation(pos, tri) > 0  # (B, F)
            corners = pos[:, tri.long().reshape(-1)]  # (B, 3F, 4)
            keep = front.repeat_interleave(3, dim=1)[..., None]  # (B, 3F, 1)
            hidden = corners.new_tensor([0.0, 0.0, 2.0, 1.0])
            pos = torch.where(keep, corners, hidden).contiguous()
            tri = torch.arange(pos.shape[1], device=pos.device, dtype=torch.int32).reshape(-1, 3)
        rast, _ = dr.rasterize(ctx, pos, tri, (height, width), grad_db=False)
        return rast

    def antialias(
        self, color: torch.Tensor, rast: torch.Tensor, verts_clip: torch.Tensor, faces: torch.Tensor
    ) -> torch.Tensor:
        """``nvdiffrast.torch.antialias`` (analytic silhouette antialiasing) on CUDA tensors.

        Args:
            color: (B, H, W, C) image to antialias.
            rast: (B, H, W, 4) output of :meth:`rasterize` for the same ``verts_clip`` and ``faces``.
            verts_clip: (B, V, 4) clip-space vertices used to rasterize.
            faces: (F, 3) faces used to rasterize.

        Returns:
            (B, H, W, C) antialiased image (float32), differentiable w.r.t. ``color`` and ``verts_clip``.
        """
        _require_cuda("color", color)
        pos, tri = self._prepare(verts_clip, faces)
        dr = _require_nvdiffrast()
        color = color.to(dtype=torch.float32).contiguous()
        rast = rast.to(device=color.device, dtype=torch.float32).contiguous()
        return dr.antialias(color, rast, pos, tri)
