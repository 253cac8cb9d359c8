"""Renderer benchmark: rasterize + interpolate + shade at 224 x 224 on an embedded head (``--flame ict``, the
default, or ``--flame generated``, the mannequin).

Prints milliseconds per image for batch 1, 8 and 32, forward and forward+backward, for the torch backend on
the CPU and, when CUDA and nvdiffrast are present, for both backends on the GPU, with peak memory (CUDA
``max_memory_allocated``; CPU ``ru_maxrss``). Writes ``render.json`` + ``render.md`` into ``--out`` (see report.py).
Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from report import DEFAULT_OUT, Report, peak_memory_mb

from decalite.cli.schema import compose_typed
from decalite.config import ReconstructConfig
from decalite.geometry.lighting import white_light
from decalite.model.factory import build_flame, load_assets
from decalite.render.raster_nvdiffrast import is_available as nvdiffrast_available
from decalite.render.renderer import Renderer


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def bench(backend: str, device: torch.device, batches: list[int], size: int, repeats: int, flame: str,
          report: Report | None = None) -> None:
    with tempfile.TemporaryDirectory() as cache:
        cfg = compose_typed("reconstruct", ["input=x", f"flame={flame}"], ReconstructConfig).flame  # conf/flame/*.yaml
        assets = load_assets(cfg, cache)
    layer = build_flame(cfg, assets).to(device)
    renderer = Renderer(assets.uv, assets.face_eye_mask, image_size=size, backend=backend).to(device)
    albedo = torch.from_numpy(assets.albedo.mean).permute(2, 0, 1)[None].to(device)  # (H, W, 3) -> (1, 3, H, W)
    for batch in batches:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            verts = layer(shape=torch.randn(batch, 100, generator=gen).to(device) * 0.5).vertices
        cam = torch.tensor([[6.5, 0.0, 0.01]], device=device).repeat(batch, 1)
        light = white_light(batch, device=device)
        alb = albedo.expand(batch, -1, -1, -1)

        def forward():
            with torch.no_grad():
                return renderer(verts, cam, alb, light)

        def forward_backward():
            v = verts.detach().requires_grad_(True)
            li = light.detach().requires_grad_(True)
            out = renderer(v, cam, alb, li)
            out.image.mean().backward()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        covered = forward().alpha.mean().item() * size * size
        t_f = _time(forward, repeats, device) / batch * 1000
        t_fb = _time(forward_backward, repeats, device) / batch * 1000
        print(f"{flame:>9} {backend:>10} {device.type:>4} batch {batch:>3}: forward {t_f:7.2f} ms/image, "
              f"forward+backward {t_fb:7.2f} ms/image, {covered:,.0f} pixels covered per image")
        if report is not None:
            report.add(flame=flame, vertices=verts.shape[1],
                       backend=backend, device=device.type, batch=batch, size=size, forward_ms_per_image=t_f,
                       forward_backward_ms_per_image=t_fb, pixels_covered=covered, peak_mb=peak_memory_mb(device),
                       repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--flame", nargs="+", default=["ict", "generated"], choices=["ict", "generated"],
                        help="embedded heads to time (ICT Face Model Light, the mannequin)")
    parser.add_argument("--cpu-only", action="store_true", help="skip the GPU even when CUDA is available")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for render.json / render.md ('' : none)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = Report("render")
    report.note(f"rasterize + interpolate + shade at {args.size}x{args.size}, {args.repeats} repeats after a warm-up; "
                "ms per image; peak_mb: CUDA max_memory_allocated per batch size, CPU ru_maxrss of the process")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, image {args.size}x{args.size}")
    for flame in args.flame:
        bench("torch", torch.device("cpu"), args.batches, args.size, args.repeats, flame, report)
        if torch.cuda.is_available() and not args.cpu_only:
            bench("torch", torch.device("cuda"), args.batches, args.size, args.repeats, flame, report)
            if nvdiffrast_available():
                bench("nvdiffrast", torch.device("cuda"), args.batches, args.size, args.repeats, flame, report)
    if torch.cuda.is_available() and not args.cpu_only and not nvdiffrast_available():
        print("nvdiffrast not installed: skipped (see README, 'Rasterizer backends')")
        report.note("nvdiffrast not installed: skipped")
    if args.out:
        print("wrote", *report.write(args.out))


if __name__ == "__main__":
    main()
