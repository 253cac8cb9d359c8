"""ID-MRF loss benchmark: forward + backward time per image (VGG19 to relu4_2 twice, plus the two MRF terms).

Uses a random-init VGG19 (same cost as the ImageNet weights), pred requiring grad, target not, default layer
weights (relu3_2: 56x56 = 3136 patches, relu4_2: 28x28 = 784 patches at 224x224). Prints the median of
``--repeats`` timed runs after one warm-up, the VGG part alone and the MRF part alone, and the peak RSS.
Writes ``mrf.json`` + ``mrf.md`` into ``--out`` (see report.py).
Run: ``python benchmarks/bench_mrf.py`` (2 CPU threads by default; ``--device cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from report import DEFAULT_OUT, Report, peak_memory_mb

from decalite.losses.mrf import id_mrf_distance, id_mrf_loss, load_vgg19_features


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for mrf.json / mrf.md ('': none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    vgg = load_vgg19_features(None, random_init=True).to(device)
    target = torch.rand(args.batch, 3, args.size, args.size, device=device)
    pred = torch.rand(args.batch, 3, args.size, args.size, device=device, requires_grad=True)

    def full() -> None:
        pred.grad = None
        id_mrf_loss(vgg, pred, target).backward()

    def vgg_only() -> None:
        pred.grad = None
        gen, tar = vgg(pred), vgg(target)
        (gen["relu3_2"].mean() + gen["relu4_2"].mean() + 0 * tar["relu4_2"].mean()).backward()

    with torch.no_grad():
        feats_t = vgg(target)
        feats_p = {k: v.clone() for k, v in vgg(pred).items()}
    for v in feats_p.values():
        v.requires_grad_(True)

    def mrf_only() -> None:
        for v in feats_p.values():
            v.grad = None
        loss = id_mrf_distance(feats_p["relu3_2"], feats_t["relu3_2"]).mean()
        loss = loss + 2 * id_mrf_distance(feats_p["relu4_2"], feats_t["relu4_2"]).mean()
        loss.backward()

    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads, "
        f"batch {args.batch}, image {args.size}x{args.size}, random-init VGG19"
    )
    report = Report("mrf")
    report.note(f"random-init VGG19, median of {args.repeats} repeats after a warm-up; peak_mb: the high-water mark "
                "so far (CUDA max_memory_allocated, CPU ru_maxrss)")
    for name, fn in (("id_mrf_loss fwd+bwd", full), ("  VGG19 x2 fwd+bwd", vgg_only), ("  MRF terms fwd+bwd", mrf_only)):
        t = _time(fn, device, args.repeats)
        print(f"{name:<22} {1000 * t / args.batch:8.1f} ms/image  ({1000 * t:8.1f} ms/batch)")
        report.add(part=name.strip(), device=device.type, batch=args.batch, size=args.size,
                   ms_per_image=1000 * t / args.batch, ms_per_batch=1000 * t, peak_mb=peak_memory_mb(device))
    if device.type == "cpu":
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    else:
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB")
    if args.out:
        print("wrote", *report.write(args.out))


if __name__ == "__main__":
    main()
