"""decalite-view: the server (always) and the page in a real browser (headless Chromium; skipped without one).

The browser tests load a GLB written by decalite.apps.gltf, take screenshots with Chromium's software WebGL
(SwiftShader) and compare them with decalite's own renderer: the page in decalite's orthographic camera must
cover the same silhouette (IoU >= 0.95), at the file's pose and at another jaw and head pose; moving a slider or
turning the detail normals off must change the picture.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from decalite.apps.gltf import export_glb
from decalite.config import FlameConfig, RendererConfig
from decalite.model.factory import build_flame, build_renderer, load_assets
from decalite.types import FaceCode
from decalite.view.server import list_reconstructions, serve_in_background

SIZE = 192
CAM = (7.0, 0.0, 0.01)
GREEN = np.array([0, 255, 0])


def _chromium() -> str | None:
    for name in (os.environ.get("DECALITE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


needs_browser = pytest.mark.skipif(_chromium() is None, reason="no Chromium (apt-get install chromium, or "
                                   "make view-test, which installs it where it can)")


@pytest.fixture(scope="module")
def head():
    cfg = FlameConfig(dir=None)
    assets = load_assets(cfg, os.environ["DECALITE_CACHE"], albedo=True)
    flame = build_flame(cfg, assets)
    renderer = build_renderer(RendererConfig(image_size=SIZE, uv_size=128, backend="torch"), assets)
    return flame, renderer, assets


@pytest.fixture(scope="module")
def site(head, tmp_path_factory):
    """A folder with one reconstruction-like GLB (with a detail normal map) and its photo, served."""
    flame, renderer, assets = head
    root = tmp_path_factory.mktemp("view")
    g = torch.Generator().manual_seed(3)
    code = FaceCode(shape=torch.randn(1, flame.n_shape, generator=g), tex=torch.zeros(1, 50),
                    exp=0.5 * torch.randn(1, flame.n_exp, generator=g),
                    pose=torch.tensor([[0.05, 0.25, 0.0, 0.1, 0.0, 0.0]]), cam=torch.tensor([CAM]),
                    light=torch.zeros(1, 9, 3), detail=torch.zeros(1, 128))
    texture = torch.from_numpy(assets.albedo.mean).permute(2, 0, 1).float()
    bumps = 1e-3 * torch.sin(torch.linspace(0, 80, 128))[None, None, :, None].expand(1, 1, 128, 128)
    (root / "face").mkdir()
    export_glb(root / "face" / "face.glb", flame, renderer, assets.uv, code, texture, bumps,
               assets.model.expression_names)
    Image.new("RGB", (32, 32), (200, 100, 50)).save(root / "face" / "face_vis_original.png")
    (root / "secret.txt").write_text("not served")
    server, url = serve_in_background(root / "face")
    yield root, url, code
    server.shutdown()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_the_server_lists_glbs_with_their_photos_and_serves_nothing_outside(site):
    root, url, _ = site
    items = list_reconstructions(root)
    assert items == [{"name": "face/face", "glb": "files/face/face.glb", "photo": "files/face/face_vis_original.png"}]
    status, body = _get(url + "api/list")
    assert status == 200 and json.loads(body)[0]["glb"] == "files/face.glb"
    status, body = _get(url + "files/face.glb")
    assert status == 200 and body[:4] == b"glTF"
    status, page = _get(url)
    assert status == 200 and b'src="viewer.js"' in page
    status, script = _get(url + "viewer.js")
    assert status == 200 and len(script) > 100_000  # three.js is in the bundle: nothing comes from a CDN
    assert b"https://cdn" not in script and b"unpkg.com" not in script
    for outside in ("files/../secret.txt", "files/%2e%2e/secret.txt", "../secret.txt", "files//etc/passwd"):
        assert _get(url + outside)[0] == 404


def _screenshot(url: str, query: str, out: Path) -> np.ndarray:
    """A SIZE x SIZE screenshot of the page (no panels, decalite's camera, green background)."""
    cam = ",".join(str(v) for v in CAM)
    page = f"{url}?ui=0&size={SIZE}&cam={cam}&bg=00ff00&{query}"
    proc = subprocess.run([_chromium(), "--headless=new", "--no-sandbox", "--use-angle=swiftshader",
                           "--enable-unsafe-swiftshader", "--hide-scrollbars", f"--window-size={SIZE},{SIZE}",
                           "--virtual-time-budget=20000", f"--screenshot={out}", page],
                          capture_output=True, text=True, timeout=120)
    assert out.exists(), proc.stderr[-2000:]
    return np.asarray(Image.open(out).convert("RGB"))[:SIZE, :SIZE].astype(np.int64)


def _silhouette(shot: np.ndarray) -> np.ndarray:
    return np.abs(shot - GREEN).sum(-1) > 60


def _decalite_silhouette(head, code: FaceCode) -> np.ndarray:
    flame, renderer, _ = head
    with torch.no_grad():
        out = flame(shape=code.shape, expression=code.exp, global_pose=code.pose[:, :3], jaw_pose=code.pose[:, 3:])
        return renderer(out.vertices, code.cam).alpha[0, 0].numpy() > 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@needs_browser
def test_the_page_shows_the_glb_as_decalite_renders_it(site, head, tmp_path):
    _, url, code = site
    shot = _screenshot(url, "", tmp_path / "initial.png")
    page, ours = _silhouette(shot), _decalite_silhouette(head, code)
    assert ours.mean() > 0.2 and _iou(page, ours) >= 0.95
    # another pose set through the page (jaw opened, head turned): the page's joints and pose correctives
    posed = _screenshot(url, "jaw=0.3&yaw=-0.2&pitch=0", tmp_path / "posed.png")
    other = FaceCode(**{**code.__dict__, "pose": torch.tensor([[0.0, -0.2, 0.0, 0.3, 0.0, 0.0]])})
    assert _iou(_silhouette(posed), _decalite_silhouette(head, other)) >= 0.95
    assert _iou(_silhouette(posed), page) < 0.95  # the pose did change the picture


@needs_browser
def test_sliders_and_the_normal_toggle_change_the_render(site, tmp_path):
    _, url, _ = site
    base = _screenshot(url, "", tmp_path / "base.png")
    jaw = _screenshot(url, "set=pose-jaw:0.45", tmp_path / "jaw.png")
    smile = _screenshot(url, "set=exp-0:3", tmp_path / "exp.png")
    flat = _screenshot(url, "set=normals:0", tmp_path / "flat.png")
    changed = lambda a, b: (np.abs(a - b).sum(-1) > 30).mean()  # noqa: E731
    assert changed(base, jaw) > 0.005 and changed(base, smile) > 0.002
    assert changed(base, flat) > 0.01  # the detail normal map shades the face


def test_the_cli_names_a_missing_folder_and_stops(tmp_path):
    import sys

    proc = subprocess.run([sys.executable, "-m", "decalite.cli.view", str(tmp_path / "nope"), "--no-browser"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nope is not a folder" in proc.stderr + proc.stdout
