"""Mixed precision keeps geometry in fp32; DDP skips the constant buffers but still syncs BatchNorm statistics."""

from __future__ import annotations

import gc
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from decalite.flame.albedo import AlbedoModel
from decalite.flame.generated import generate_head
from decalite.flame.layer import FlameLayer
from decalite.geometry.lighting import sh_shading
from decalite.render.renderer import Renderer
from decalite.training.distributed import constant_buffer_names, exclude_constants_from_ddp


@pytest.fixture(scope="module")
def head():
    return generate_head(0)


def test_geometry_runs_in_fp32_under_bf16_autocast(head):
    layer = FlameLayer(head.model, head.embedding, n_shape=20, n_exp=10)
    renderer = Renderer(head.uv, head.face_eye_mask, image_size=48, uv_size=32, backend="torch")
    albedo = AlbedoModel(head.albedo, n_tex=5, uv_size=32)
    gen = torch.Generator().manual_seed(0)
    shape, exp = torch.randn(2, 20, generator=gen), torch.randn(2, 10, generator=gen)
    pose = 0.2 * torch.randn(2, 3, generator=gen)
    light = torch.randn(2, 9, 3, generator=gen)
    tex = torch.randn(2, 5, generator=gen)
    cam = torch.tensor([[6.0, 0.0, 0.0], [6.5, 0.01, 0.0]])

    def run():
        out = layer(shape=shape, expression=exp, global_pose=pose)
        r = renderer(out.vertices, cam, albedo(tex), light)
        return out, r

    ref_out, ref_r = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, r = run()
        normals = torch.nn.functional.normalize(torch.randn(1, 8, 8, 3, generator=gen), dim=-1)
        shading = sh_shading(normals.bfloat16(), light[:1].bfloat16())
    for got, want in ((out.vertices, ref_out.vertices), (out.landmarks2d, ref_out.landmarks2d),
                      (r.image, ref_r.image), (r.shading, ref_r.shading)):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert shading.dtype == torch.float32
    torch.testing.assert_close(shading, sh_shading(normals.bfloat16().float(), light[:1].bfloat16().float()))
    # Without the fp32 region, bf16 would lose about a millimetre on 10 cm coordinates.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lossy = torch.einsum("vck,bk->bvc", layer.shapedirs[..., :20], shape)
    exact = torch.einsum("vck,bk->bvc", layer.shapedirs[..., :20], shape)
    assert (lossy.float() - exact).abs().max() > 1e-5


class _Model(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.flame = FlameLayer(head.model, head.embedding, n_shape=5, n_exp=5)
        self.bn = nn.BatchNorm1d(3)
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(self.bn(x)).sum() + self.flame(batch_size=1).vertices.mean()


def _worker(rank: int, world: int, store: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    head = generate_head(0)
    model = _Model(head)
    if rank == 1:
        model.flame.v_template.add_(1.0)  # a constant that differs: DDP must leave it alone
        model.bn.running_mean.fill_(5.0)  # a real buffer: DDP must overwrite it with rank 0's
    exclude_constants_from_ddp(model)
    ddp = nn.parallel.DistributedDataParallel(model)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(rank))
    ddp(x).backward()
    torch.save({"v0": float(model.flame.v_template[0, 0]), "bn": model.bn.running_mean.clone(),
                "grad": model.lin.weight.grad.clone()}, os.path.join(out_dir, f"rank{rank}.pt"))
    # Free the DDP wrapper (its reducer sits in reference cycles) before the process group goes: left to
    # interpreter shutdown, torch 2.14's reducer aborts the process ("terminate called without an active
    # exception") in about 1 run in 5 on this machine; collected first, 0 in 90.
    del ddp
    gc.collect()
    dist.destroy_process_group()


def test_ddp_skips_constants_and_syncs_batchnorm(head, tmp_path):
    names = constant_buffer_names(_Model(head))
    assert "flame.v_template" in names and "flame.shapedirs" in names
    assert not any(n.startswith("bn.") for n in names)
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r1["v0"] == pytest.approx(r0["v0"] + 1.0)  # not broadcast from rank 0
    # BatchNorm buffers were broadcast from rank 0 before the forward, then each rank updated them with its
    # own batch; the gradients are all-reduced, so they agree.
    assert r1["bn"].abs().max() < 1.0  # 0.9 * 0 + 0.1 * batch mean, not 0.9 * 5 + ...
    torch.testing.assert_close(r0["grad"], r1["grad"])
