"""Backend-selecting rasterizer: decalite's PyTorch rasterizer or nvdiffrast, behind one contract.

``Rasterizer(backend).rasterize(verts_clip (B, V, 4), faces (F, 3), (H, W), cull_backfaces=False)``
returns rast (B, H, W, 4) = (u, v, z/w, triangle_id + 1), zeros where empty, image row 0 at NDC y = -1.

Backends:
    "torch": :func:`decalite.render.raster_torch.rasterize`, on any device (the CPU default).
    "nvdiffrast": nvdiffrast's CUDA rasterizer; needs CUDA inputs and nvdiffrast installed.
    "auto": nvdiffrast when the input is on CUDA and nvdiffrast is importable, else torch. The choice is logged
        (INFO, once per (backend, device type) per Rasterizer).

Antialiasing is nvdiffrast-only: :meth:`Rasterizer.antialias` returns the colour unchanged on the torch backend.
The class is a plain, picklable object (nvdiffrast contexts are dropped when pickled and recreated lazily).
"""

from __future__ import annotations

import logging

import torch

from decalite.render import raster_nvdiffrast, raster_torch
from decalite.render.raster_nvdiffrast import NvdiffrastRasterizer

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "nvdiffrast")


def _validate(verts_clip: torch.Tensor, faces: torch.Tensor, resolution) -> tuple[int, int]:
    if not isinstance(verts_clip, torch.Tensor) or verts_clip.ndim != 3 or verts_clip.shape[-1] != 4:
        shape = tuple(verts_clip.shape) if isinstance(verts_clip, torch.Tensor) else type(verts_clip).__name__
        raise ValueError(f"verts_clip must be a (B, V, 4) tensor of clip-space vertices, got {shape}")
    if not verts_clip.is_floating_point():
        raise ValueError(f"verts_clip must be floating point, got {verts_clip.dtype}")
    if not isinstance(faces, torch.Tensor) or faces.ndim != 2 or faces.shape[-1] != 3:
        shape = tuple(faces.shape) if isinstance(faces, torch.Tensor) else type(faces).__name__
        raise ValueError(f"faces must be an (F, 3) tensor of vertex indices, got {shape}")
    if faces.is_floating_point() or faces.is_complex() or faces.dtype == torch.bool:
        raise ValueError(f"faces must hold integer vertex indices, got {faces.dtype}")
    try:
        height, width = (int(r) for r in resolution)
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be (H, W), got {resolution!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"resolution must be positive, got {(height, width)}")
    return height, width


class Rasterizer:
    """Rasterize clip-space triangles with a selectable backend ("auto", "torch" or "nvdiffrast")."""

    def __init__(self, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self._nvdiffrast = NvdiffrastRasterizer()
        self._last_backend: str | None = None
        self._logged: set[tuple[str, str]] = set()
        self._nvdiffrast_error: str | None = None  # "auto": why nvdiffrast's plugin could not be used, once known

    @property
    def last_backend(self) -> str | None:
        """The backend ("torch" or "nvdiffrast") used by the last call, None before any call."""
        return self._last_backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r})"

    def _resolve(self, device: torch.device) -> str:
        if self.backend == "torch":
            return "torch"
        if self.backend == "nvdiffrast":
            if device.type != "cuda":
                raise RuntimeError(
                    f"backend='nvdiffrast' needs CUDA tensors, got inputs on {device}: nvdiffrast is CUDA-only; "
                    "move the inputs to a CUDA device or use backend='torch' (or 'auto')"
                )
            if not raster_nvdiffrast.nvdiffrast_importable():
                raise RuntimeError(
                    f"backend='nvdiffrast' but nvdiffrast cannot be imported: {raster_nvdiffrast.INSTALL_HINT}"
                )
            return "nvdiffrast"
        choice = "nvdiffrast" if device.type == "cuda" and raster_nvdiffrast.nvdiffrast_importable() else "torch"
        if choice == "nvdiffrast" and not self._nvdiffrast_usable(device):
            choice = "torch"
        key = (choice, device.type)
        if key not in self._logged:
            self._logged.add(key)
            logger.info("Rasterizer(backend='auto'): using the %s backend for %s inputs", choice, device.type)
        return choice

    def _nvdiffrast_usable(self, device: torch.device) -> bool:
        """For "auto": nvdiffrast imports, but can its CUDA plugin be built and loaded here (a compiler, a torch it
        supports)? If not, the torch backend is used from then on, with one warning naming the error."""
        if self._nvdiffrast_error is not None:
            return False
        try:
            self._nvdiffrast.context(device)  # builds or loads the plugin the first time; cached per device
        except Exception as err:  # noqa: BLE001 (a failed build raises RuntimeError, ImportError, OSError, ...)
            self._nvdiffrast_error = f"{type(err).__name__}: {err}"
            logger.warning(
                "Rasterizer(backend='auto'): nvdiffrast is installed but its CUDA plugin could not be built or "
                "loaded (%s); using the torch backend instead (renderer.backend=nvdiffrast makes this an error). %s",
                self._nvdiffrast_error.splitlines()[0][:300], raster_nvdiffrast.INSTALL_HINT)
            return False
        return True

    def rasterize(
        self,
        verts_clip: torch.Tensor,
        faces: torch.Tensor,
        resolution: tuple[int, int],
        cull_backfaces: bool = False,
    ) -> torch.Tensor:
        """Rasterize triangles.

        Args:
            verts_clip: (B, V, 4) clip-space vertices (x, y, z, w); NDC = xyz / w.
            faces: (F, 3) integer vertex indices.
            resolution: (H, W) in pixels.
            cull_backfaces: drop triangles that are clockwise in NDC with y up (seen from their back).

        Returns:
            rast: (B, H, W, 4) = (u, v, z/w, triangle_id + 1) with ids into ``faces``, zeros where empty;
            row 0 is NDC y = -1. The torch backend keeps the dtype of ``verts_clip``; nvdiffrast returns float32.
        """
        height, width = _validate(verts_clip, faces, resolution)
        backend = self._resolve(verts_clip.device)
        faces = faces.to(verts_clip.device)
        if backend == "nvdiffrast":
            rast = self._nvdiffrast.rasterize(verts_clip, faces, (height, width), cull_backfaces=cull_backfaces)
        else:
            rast = raster_torch.rasterize(verts_clip, faces, (height, width), cull_backfaces=cull_backfaces)
        self._last_backend = backend
        return rast

    def antialias(
        self, color: torch.Tensor, rast: torch.Tensor, verts_clip: torch.Tensor, faces: torch.Tensor
    ) -> torch.Tensor:
        """Antialias silhouette edges of ``color`` (B, H, W, C) rendered from ``rast``.

        Antialiasing is nvdiffrast-only: on the nvdiffrast backend this is ``nvdiffrast.torch.antialias``
        (differentiable w.r.t. the colour and the vertex positions); on the torch backend the colour is returned
        unchanged (the very same tensor). "auto" resolves the backend from the device of ``color`` as in
        :meth:`rasterize`.
        """
        _validate(verts_clip, faces, rast.shape[1:3])
        if color.ndim != 4 or rast.ndim != 4 or color.shape[:3] != rast.shape[:3] or rast.shape[-1] != 4:
            raise ValueError(
                f"color must be (B, H, W, C) and rast (B, H, W, 4) with matching B, H, W; "
                f"got {tuple(color.shape)} and {tuple(rast.shape)}"
            )
        backend = self._resolve(color.device)
        self._last_backend = backend
        if backend == "torch":
            return color
        return self._nvdiffrast.antialias(color, rast, verts_clip, faces)
