"""Rasterizer backend selection (torch / nvdiffrast / auto), pickling, validation, and GPU parity with nvdiffrast."""

from __future__ import annotations

import copy
import logging
import pickle
import sys
import threading

import numpy as np
import pytest
import torch

from decalite.render import raster_nvdiffrast, raster_torch
from decalite.render.raster_nvdiffrast import NvdiffrastRasterizer
from decalite.render.rasterizer import Rasterizer

HAS_NVDIFFRAST_GPU = raster_nvdiffrast.is_available()
requires_nvdiffrast = pytest.mark.skipif(not HAS_NVDIFFRAST_GPU, reason="needs CUDA and nvdiffrast")

# nvdiffrast's CUDA rasterizer snaps vertices to 1/16 pixel (CR_SUBPIXEL_LOG2 = 4), decalite's to 1/256:
# test vertices are put on the 1/16-pixel grid (pixel centres included) so both see identical triangles.
GRID = 16.0


def _snap_ndc(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """Snap NDC (..., 2) to the 1/GRID-pixel lattice that contains the pixel centres."""
    px = np.round(((xy[..., 0] + 1) * 0.5 * w - 0.5) * GRID) / GRID
    py = np.round(((xy[..., 1] + 1) * 0.5 * h - 0.5) * GRID) / GRID
    return np.stack([(px + 0.5) / w * 2 - 1, (py + 0.5) / h * 2 - 1], -1)


def _random_mesh(seed: int, h: int, w: int, n_verts: int = 30, n_faces: int = 25, batch: int = 1, perspective=False):
    """Random overlapping triangles, (B, V, 4) float32 clip-space vertices and (F, 3) int64 faces."""
    rng = np.random.default_rng(seed)
    xy = _snap_ndc(rng.uniform(-1.2, 1.2, (batch, n_verts, 2)), h, w)
    z = rng.uniform(-0.9, 0.9, (batch, n_verts, 1))
    wgt = rng.uniform(0.5, 2.0, (batch, n_verts, 1)) if perspective else np.ones((batch, n_verts, 1))
    verts = np.concatenate([xy, z, np.ones_like(z)], -1) * wgt
    faces = rng.integers(0, n_verts, (n_faces, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    return torch.from_numpy(verts).float(), torch.from_numpy(faces)


# --------------------------------------------------------------------------------------------------------------
# CPU tests
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cull", [False, True])
def test_torch_backend_equals_raster_torch(cull):
    verts, faces = _random_mesh(0, 24, 32, batch=2)
    rast = Rasterizer("torch").rasterize(verts, faces, (24, 32), cull_backfaces=cull)
    expected = raster_torch.rasterize(verts, faces, (24, 32), cull_backfaces=cull)
    assert rast.shape == (2, 24, 32, 4)
    assert torch.equal(rast, expected)


def test_auto_on_cpu_picks_torch_and_logs_once(caplog):
    verts, faces = _random_mesh(1, 16, 16)
    rasterizer = Rasterizer()  # "auto" by default
    assert rasterizer.backend == "auto" and rasterizer.last_backend is None
    with caplog.at_level(logging.INFO, logger="decalite.render.rasterizer"):
        first = rasterizer.rasterize(verts, faces, (16, 16))
        second = rasterizer.rasterize(verts, faces, (16, 16), cull_backfaces=True)
    assert rasterizer.last_backend == "torch"
    assert torch.equal(first, raster_torch.rasterize(verts, faces, (16, 16)))
    assert torch.equal(second, raster_torch.rasterize(verts, faces, (16, 16), cull_backfaces=True))
    records = [r for r in caplog.records if r.name == "decalite.render.rasterizer"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert "torch" in records[0].getMessage() and "cpu" in records[0].getMessage()


def test_nvdiffrast_backend_on_cpu_raises_clear_error():
    verts, faces = _random_mesh(2, 16, 16)
    rasterizer = Rasterizer("nvdiffrast")
    with pytest.raises(RuntimeError, match="nvdiffrast") as info:
        rasterizer.rasterize(verts, faces, (16, 16))
    assert "CUDA" in str(info.value)
    assert rasterizer.last_backend is None
    with pytest.raises(RuntimeError, match="CUDA"):
        NvdiffrastRasterizer().rasterize(verts, faces, (16, 16))


def test_nvdiffrast_backend_without_nvdiffrast_names_install(monkeypatch):
    """On a CUDA input without nvdiffrast the error says how to install it (the device check is bypassed)."""
    monkeypatch.setattr(raster_nvdiffrast, "nvdiffrast_importable", lambda: False)
    with pytest.raises(RuntimeError, match="no-build-isolation"):
        Rasterizer("nvdiffrast")._resolve(torch.device("cuda", 0))


def test_auto_on_cuda_picks_torch_without_nvdiffrast(monkeypatch, caplog):
    monkeypatch.setattr(raster_nvdiffrast, "nvdiffrast_importable", lambda: False)
    rasterizer = Rasterizer("auto")
    with caplog.at_level(logging.INFO, logger="decalite.render.rasterizer"):
        assert rasterizer._resolve(torch.device("cuda", 0)) == "torch"
        assert rasterizer._resolve(torch.device("cuda", 0)) == "torch"
        assert rasterizer._resolve(torch.device("cpu")) == "torch"
    messages = [r.getMessage() for r in caplog.records if r.name == "decalite.render.rasterizer"]
    assert len(messages) == 2  # once per (backend, device type)


def test_auto_falls_back_to_torch_when_the_nvdiffrast_plugin_cannot_be_built(monkeypatch, caplog):
    """nvdiffrast imports but its JIT build fails (no compiler, an unsupported torch): "auto" warns once, naming the
    error, and uses the torch backend from then on; an explicit backend="nvdiffrast" is not rescued."""
    calls = []

    def failing_context(self, device):
        calls.append(device)
        raise RuntimeError("Error building extension 'nvdiffrast_plugin'")

    monkeypatch.setattr(raster_nvdiffrast, "nvdiffrast_importable", lambda: True)
    monkeypatch.setattr(NvdiffrastRasterizer, "context", failing_context)
    rasterizer = Rasterizer("auto")
    with caplog.at_level(logging.WARNING, logger="decalite.render.rasterizer"):
        assert rasterizer._resolve(torch.device("cuda", 0)) == "torch"
        assert rasterizer._resolve(torch.device("cuda", 0)) == "torch"
    assert len(calls) == 1  # the build is not retried on every call
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Error building extension" in warnings[0] and "torch backend" in warnings[0]
    assert Rasterizer("nvdiffrast")._resolve(torch.device("cuda", 0)) == "nvdiffrast"  # fails later, loudly


def test_is_available_is_bool_and_false_without_cuda():
    assert isinstance(raster_nvdiffrast.is_available(), bool)
    if not torch.cuda.is_available():
        assert raster_nvdiffrast.is_available() is False


def test_contexts_are_lazy_and_dropped_when_pickled():
    nv = NvdiffrastRasterizer()
    assert nv._contexts == {}  # nothing created in __init__
    nv._contexts[0] = threading.Lock()  # stands in for an unpicklable RasterizeCudaContext
    for clone in (pickle.loads(pickle.dumps(nv)), copy.deepcopy(nv)):
        assert isinstance(clone, NvdiffrastRasterizer) and clone._contexts == {}
    assert 0 in nv._contexts  # the original keeps its contexts


class _PluginNotOnPath:
    """Stands in for ``nvdiffrast.torch`` whose JIT-built plugin is importable only once its build folder is on
    sys.path (what torch 2.11 + nvdiffrast 0.3.3 do on a GPU machine, see raster_nvdiffrast._make_context)."""

    def __init__(self, plugin: str, build_dir: str) -> None:
        self.plugin, self.build_dir, self.calls = plugin, build_dir, 0

    def RasterizeCudaContext(self, device):  # noqa: N802 (nvdiffrast's name)
        self.calls += 1
        if self.build_dir not in sys.path:
            raise ModuleNotFoundError(f"No module named '{self.plugin}'", name=self.plugin)
        return ("context", device)


def test_context_imports_a_built_plugin_from_its_build_folder(monkeypatch, tmp_path, caplog):
    from torch.utils import cpp_extension

    plugin = "nvdiffrast_plugin_0_3_3_1_torch2_11_0_cu130"
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    build_dir = cpp_extension._get_build_directory(plugin, False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the fallback appends to sys.path: undone after the test
    fake = _PluginNotOnPath(plugin, build_dir)
    with caplog.at_level(logging.WARNING, logger="decalite.render.raster_nvdiffrast"):
        ctx = raster_nvdiffrast._make_context(fake, torch.device("cuda", 0))
    assert ctx == ("context", torch.device("cuda", 0)) and fake.calls == 2
    assert build_dir in sys.path and build_dir.startswith(str(tmp_path))
    assert any(plugin in r.getMessage() for r in caplog.records)


def test_context_reraises_other_missing_modules(monkeypatch):
    class Broken:
        def RasterizeCudaContext(self, device):  # noqa: N802
            raise ModuleNotFoundError("No module named 'somethingelse'", name="somethingelse")

    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ModuleNotFoundError, match="somethingelse"):
        raster_nvdiffrast._make_context(Broken(), torch.device("cuda", 0))


@pytest.mark.parametrize("backend", ["auto", "torch", "nvdiffrast"])
def test_rasterizer_pickles_and_deepcopies(backend):
    verts, faces = _random_mesh(3, 16, 16)
    rasterizer = Rasterizer(backend)
    rasterizer._nvdiffrast._contexts[0] = threading.Lock()
    if backend != "nvdiffrast":
        rasterizer.rasterize(verts, faces, (16, 16))
    for clone in (pickle.loads(pickle.dumps(rasterizer)), copy.deepcopy(rasterizer)):
        assert clone.backend == backend
        assert clone.last_backend == rasterizer.last_backend
        assert clone._nvdiffrast._contexts == {}
        if backend != "nvdiffrast":
            assert torch.equal(clone.rasterize(verts, faces, (16, 16)), rasterizer.rasterize(verts, faces, (16, 16)))


def test_torch_antialias_returns_colour_unchanged():
    verts, faces = _random_mesh(4, 16, 16)
    rasterizer = Rasterizer("torch")
    rast = rasterizer.rasterize(verts, faces, (16, 16))
    color = torch.rand(1, 16, 16, 3)
    assert rasterizer.antialias(color, rast, verts, faces) is color
    assert Rasterizer("auto").antialias(color, rast, verts, faces) is color


class _FakeDr:
    """Stand-in for ``nvdiffrast.torch`` on CPU (decalite's rasterizer, which both draws both sides by default)."""

    calls: list = []

    class RasterizeCudaContext:
        def __init__(self, device=None):
            self.device = device

    @classmethod
    def rasterize(cls, glctx, pos, tri, resolution, ranges=None, grad_db=True):
        assert pos.dtype == torch.float32 and pos.is_contiguous() and pos.ndim == 3
        assert tri.dtype == torch.int32 and tri.is_contiguous() and tri.device == pos.device
        assert isinstance(resolution, tuple) and grad_db is False
        cls.calls.append(tri.shape[0])
        rast = raster_torch.rasterize(pos, tri, resolution)
        return rast, torch.zeros_like(rast)


def test_nvdiffrast_culling_path_keeps_original_face_ids(monkeypatch):
    """The wrapper's culling (per batch item, ids into the ORIGINAL faces) equals decalite's culling."""
    monkeypatch.setattr(raster_nvdiffrast, "_load_nvdiffrast", lambda: _FakeDr)
    monkeypatch.setattr(raster_nvdiffrast, "_require_cuda", lambda name, tensor: None)
    monkeypatch.setattr(NvdiffrastRasterizer, "context", lambda self, device: _FakeDr.RasterizeCudaContext(device))
    verts, faces = _random_mesh(6, 24, 32, batch=2)
    verts[1, :, 0] *= -1  # mirror the second item: every face flips orientation there
    nv = NvdiffrastRasterizer()
    for cull in (False, True):
        rast = nv.rasterize(verts, faces, (24, 32), cull_backfaces=cull)
        expected = raster_torch.rasterize(verts, faces, (24, 32), cull_backfaces=cull)
        assert torch.equal(rast[..., 3], expected[..., 3])
        assert torch.allclose(rast, expected, atol=1e-5)
    assert _FakeDr.calls[-2:] == [len(faces), len(faces)]


@pytest.mark.parametrize(
    "verts_shape, faces, resolution",
    [
        ((5, 4), torch.tensor([[0, 1, 2]]), (8, 8)),  # missing batch axis
        ((1, 5, 3), torch.tensor([[0, 1, 2]]), (8, 8)),  # not homogeneous
        ((1, 5, 4), torch.tensor([0, 1, 2]), (8, 8)),  # faces not (F, 3)
        ((1, 5, 4), torch.tensor([[0, 1, 2, 3]]), (8, 8)),  # quads
        ((1, 5, 4), torch.tensor([[0.0, 1.0, 2.0]]), (8, 8)),  # float faces
        ((1, 5, 4), torch.tensor([[0, 1, 2]]), (8,)),  # bad resolution
        ((1, 5, 4), torch.tensor([[0, 1, 2]]), (0, 8)),  # empty resolution
    ],
)
def test_bad_inputs_raise_value_error(verts_shape, faces, resolution):
    with pytest.raises(ValueError):
        Rasterizer("torch").rasterize(torch.zeros(verts_shape), faces, resolution)


def test_bad_backend_and_antialias_shapes_raise_value_error():
    with pytest.raises(ValueError, match="backend"):
        Rasterizer("opengl")
    verts, faces = _random_mesh(5, 16, 16)
    rast = Rasterizer("torch").rasterize(verts, faces, (16, 16))
    with pytest.raises(ValueError):
        Rasterizer("torch").antialias(torch.rand(1, 8, 8, 3), rast, verts, faces)


# --------------------------------------------------------------------------------------------------------------
# GPU parity with nvdiffrast (run only where CUDA and nvdiffrast are available)
# --------------------------------------------------------------------------------------------------------------


def _compare(rast_torch: torch.Tensor, rast_nv: torch.Tensor, min_agree: float = 0.995) -> None:
    """Same triangle ids on >= min_agree of pixels; z/w within 1e-5 and u, v within 1e-4 where ids agree."""
    assert rast_torch.shape == rast_nv.shape
    a, b = rast_torch.double().cpu(), rast_nv.double().cpu()
    same = a[..., 3] == b[..., 3]
    frac = same.double().mean().item()
    assert frac >= min_agree, f"triangle ids agree on only {frac:.4%} of pixels"
    covered = same & (a[..., 3] > 0)
    assert covered.any()
    assert torch.allclose(a[..., 2][covered], b[..., 2][covered], rtol=0, atol=1e-5)
    assert torch.allclose(a[..., :2][covered], b[..., :2][covered], rtol=0, atol=1e-4)
    # empty pixels are all-zero in both
    assert torch.all(b[~(b[..., 3] > 0)] == 0)


def _icosphere(h: int, w: int, depth_sign: float, subdivisions: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """trimesh icosphere (outward, counter-clockwise faces) projected orthographically, viewed from +z.

    depth_sign = -1: NDC z = -0.5 z, so the near (+z) hemisphere, whose faces are counter-clockwise, wins the depth
    test; +1 puts the clockwise back hemisphere in front (what back-face culling must remove).
    """
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.8)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    xy = _snap_ndc(v[:, :2] * np.array([0.9, 1.0]), h, w)
    verts = np.concatenate([xy, depth_sign * 0.5 * v[:, 2:3], np.ones((len(v), 1))], 1)
    return torch.from_numpy(verts).float()[None], torch.from_numpy(np.asarray(mesh.faces, dtype=np.int64))


@pytest.mark.gpu
@requires_nvdiffrast
@pytest.mark.parametrize("cull", [False, True])
@pytest.mark.parametrize("perspective", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gpu_random_meshes_match_nvdiffrast(seed, perspective, cull):
    h, w = 48, 64
    verts, faces = _random_mesh(seed, h, w, batch=2, perspective=perspective)
    verts, faces = verts.cuda(), faces.cuda()
    expected = Rasterizer("torch").rasterize(verts, faces, (h, w), cull_backfaces=cull)
    nv = Rasterizer("nvdiffrast")
    rast = nv.rasterize(verts, faces, (h, w), cull_backfaces=cull)
    assert nv.last_backend == "nvdiffrast"
    assert rast.is_cuda and rast.dtype == torch.float32
    _compare(expected, rast)


@pytest.mark.gpu
@requires_nvdiffrast
@pytest.mark.parametrize("cull", [False, True])
@pytest.mark.parametrize("depth_sign", [-1.0, 1.0])
def test_gpu_icosphere_matches_nvdiffrast(depth_sign, cull):
    h, w = 96, 128
    verts, faces = _icosphere(h, w, depth_sign)
    verts, faces = verts.cuda(), faces.cuda()
    expected = Rasterizer("torch").rasterize(verts, faces, (h, w), cull_backfaces=cull)
    rast = Rasterizer("nvdiffrast").rasterize(verts, faces, (h, w), cull_backfaces=cull)
    _compare(expected, rast)
    if cull:  # only counter-clockwise (front, +z) faces survive, whichever hemisphere is nearer
        ids = rast[..., 3].long()
        hit = ids[ids > 0] - 1
        v = verts[0, :, :2].double()
        e1, e2 = v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]
        area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        assert torch.all(area[hit] > 0)


@pytest.mark.gpu
@requires_nvdiffrast
def test_gpu_auto_picks_nvdiffrast_contexts_lazy_and_copyable(caplog):
    verts, faces = _icosphere(32, 32, -1.0, subdivisions=2)
    verts, faces = verts.cuda(), faces.cuda()
    rasterizer = Rasterizer("auto")
    assert rasterizer._nvdiffrast._contexts == {}
    with caplog.at_level(logging.INFO, logger="decalite.render.rasterizer"):
        rast = rasterizer.rasterize(verts, faces, (32, 32))
        rasterizer.rasterize(verts, faces, (32, 32))
    assert rasterizer.last_backend == "nvdiffrast"
    assert len([r for r in caplog.records if r.name == "decalite.render.rasterizer"]) == 1
    assert len(rasterizer._nvdiffrast._contexts) == 1
    clone = copy.deepcopy(rasterizer)
    assert clone._nvdiffrast._contexts == {}
    assert torch.equal(clone.rasterize(verts, faces, (32, 32)), rast)
    # antialias runs on the nvdiffrast backend and keeps the shape
    color = (rast[..., 3:4] > 0).float().expand(-1, -1, -1, 3).contiguous()
    out = rasterizer.antialias(color, rast, verts, faces)
    assert out.shape == color.shape and out.is_cuda


@pytest.mark.gpu
@requires_nvdiffrast
def test_gpu_nvdiffrast_gradients_reach_vertices_with_culling():
    verts, faces = _icosphere(32, 32, 1.0, subdivisions=2)
    verts = verts.cuda().requires_grad_(True)
    rast = Rasterizer("nvdiffrast").rasterize(verts, faces.cuda(), (32, 32), cull_backfaces=True)
    (rast[..., 0] + rast[..., 1]).sum().backward()
    assert verts.grad is not None and torch.isfinite(verts.grad).all() and verts.grad.abs().sum() > 0
