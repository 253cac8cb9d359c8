"""Training-step throughput: images/s of one coarse and one detail training step (forward, backward, gradient
clipping, Adam step) at the paper's settings and at ``synthetic_cpu``'s, with peak memory.

    paper          experiment=deca_coarse / deca_detail: ResNet-50 encoders, 224 px, 8 groups x K=4 = 32 images,
                   UV 256; coarse with shape consistency (the batch is rendered twice) and the identity loss
                   (SFace); detail with detail consistency and ID-MRF (VGG19, random weights: same cost).
    synthetic_cpu  experiment=synthetic_cpu / synthetic_cpu_detail as configured (small backbone and image size).

Random images, landmarks and masks of the right shapes (no data loading); the stage module's own ``compute``
(:class:`~decalite.training.coarse.CoarseModule`, :class:`~decalite.training.detail.DetailModule`), so the
figures follow the configs. Warm-up steps are excluded. The same script runs on CUDA when available: bf16
autocast (geometry stays fp32, see decalite.precision), channels_last networks, ``renderer.backend=auto``
(nvdiffrast when importable), cuDNN autotuning as ``trainer.benchmark`` sets it (``--no-cudnn-benchmark``: off);
``--compile`` wraps the encoders in torch.compile; ``--profile DIR`` writes torch.profiler's op table. Each
(setting, stage) runs in its own process so the CPU peak (``ru_maxrss``) is that configuration's; on CUDA the peak is
``torch.cuda.max_memory_allocated``.

Writes ``train.json`` + ``train.md`` into ``--out`` (see report.py).
Run: ``python benchmarks/bench_train.py`` (CPU: 2 threads, a few steps), ``--device cuda``, ``--only paper:coarse``.
Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from contextlib import nullcontext

import torch
from report import DEFAULT_OUT, Report

EXPERIMENTS = {("paper", "coarse"): "deca_coarse", ("paper", "detail"): "deca_detail",
               ("synthetic_cpu", "coarse"): "synthetic_cpu", ("synthetic_cpu", "detail"): "synthetic_cpu_detail"}
#: (warm-up, timed) steps by device and setting; the paper's step takes tens of seconds on 2 CPU threads.
STEPS = {("cpu", "paper"): (1, 2), ("cpu", "synthetic_cpu"): (2, 5), ("cuda", "paper"): (5, 20),
         ("cuda", "synthetic_cpu"): (5, 20)}
#: Identity groups per step where the configured batch does not fit: the paper's detail step (64 images through
#: VGG19 for ID-MRF with detail consistency) needs more than 21 GB of host memory on the CPU.
GROUPS = {("cpu", "paper", "detail"): 2}


def _compose(experiment: str):
    from hydra import compose, initialize_config_dir

    from decalite.cli._hydra import CONF_DIR

    overrides = [f"experiment={experiment}", "renderer.backend=auto", "init_from=null", "loss.vgg19_weights=null",
                 "paths.output_dir=unused", "logger=csv"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def _batch(groups: int, k: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A random identity-group batch: images (B, K, 3, S, S), landmarks (B, K, 68, 2), masks (B, K, 1, S, S)."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(groups, k, 3, size, size, generator=gen)
    landmarks = 0.6 * (2.0 * torch.rand(groups, k, 68, 2, generator=gen) - 1.0)
    masks = (torch.rand(groups, k, 1, size, size, generator=gen) > 0.2).float()
    return {"images": images.to(device), "landmarks": landmarks.to(device), "masks": masks.to(device)}


def measure(setting: str, stage: str, device: torch.device, warmup: int, steps: int,
            groups: int | None = None, compile_encoders: bool = False, profile_to: str | None = None) -> dict:
    """Build the stage module of one configuration and time ``steps`` training steps after ``warmup``
    (``groups``: identity groups per step instead of the configured ``data.batch_size``). ``profile_to``: a file
    that gets torch.profiler's table (ops by self device time) of 3 more steps."""
    from decalite.cli.train import stage_config
    from decalite.losses.mrf import load_vgg19_features
    from decalite.model.factory import build_deca
    from decalite.nets.identity import load_identity_net
    from decalite.training.train import STAGES

    cfg = _compose(EXPERIMENTS[(setting, stage)])
    scfg = stage_config(cfg)
    built = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    deca = built[0] if isinstance(built, tuple) else built
    pretrained = {}
    if scfg.loss.terms.get("identity", 0.0):
        pretrained["identity"] = load_identity_net(scfg.loss.identity_net, scfg.loss.identity_weights)
    if scfg.loss.terms.get("mrf", 0.0):
        pretrained["mrf"] = load_vgg19_features(None, random_init=True)
    module = STAGES[stage](deca, scfg, pretrained)
    module.setup("fit")  # exactly the stage's parameters require gradients
    module.to(device).train()
    cuda = device.type == "cuda"
    if cuda:  # as StageModule.setup does for a CUDA trainer: encoders and pretrained networks
        module.use_channels_last()
    params = [p for m in module.trainable() for p in m.parameters() if p.requires_grad]
    if compile_encoders:  # the stage modules call self.deca.<encoder>: the compiled wrappers share the parameters
        deca.coarse_encoder = torch.compile(deca.coarse_encoder)
        deca.detail_encoder = torch.compile(deca.detail_encoder)
    optimizer = torch.optim.Adam(params, lr=scfg.optim.lr, betas=tuple(scfg.optim.betas))
    configured = int(cfg.data.batch_size)
    groups, k, size = groups or configured, int(cfg.data.k), int(cfg.renderer.image_size)
    batch = _batch(groups, k, size, device)
    if cuda:
        batch["images"] = batch["images"].flatten(0, 1).contiguous(memory_format=torch.channels_last) \
            .unflatten(0, (groups, k))  # (B*K, 3, S, S) channels_last -> (B, K, 3, S, S)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    clip = float(cfg.trainer.get("gradient_clip_val") or 0.0)

    def step() -> float:
        with autocast:
            result, _, _ = module.compute(batch)
        result.total.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(result.total.detach())

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    losses = [step() for _ in range(steps)]
    if cuda:
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - t0) / steps
    if profile_to:
        _profile(step, device, profile_to)
    peak_mb = (torch.cuda.max_memory_allocated(device) if cuda
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    return {"setting": setting, "stage": stage, "device": str(device), "backbone": str(cfg.model.backbone),
            "image_size": size, "uv_size": int(cfg.renderer.uv_size), "groups": groups, "k": k,
            "images": groups * k, "configured_groups": configured, "shape_consistency": scfg.loss.shape_consistency,
            "detail_consistency": scfg.loss.detail_consistency, "pretrained": sorted(pretrained),
            "rasterizer": getattr(deca.renderer.rasterizer, "last_backend", None) or "none",
            "warmup": warmup, "steps": steps, "s_per_step": seconds, "images_per_s": groups * k / seconds,
            "peak_mb": peak_mb, "finite": all(math.isfinite(v) for v in losses), "threads": torch.get_num_threads(),
            "autocast": "bf16" if cuda else None, "channels_last": cuda, "compiled": compile_encoders,
            "cudnn_benchmark": cuda and torch.backends.cudnn.benchmark}


def _profile(step, device: torch.device, path: str, steps: int = 3) -> None:
    """torch.profiler over ``steps`` training steps; the op table sorted by self device (or CPU) time -> ``path``."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(device)
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=40, max_name_column_width=70)
    with open(path, "w") as f:
        f.write(f"torch.profiler, {steps} training steps, ops sorted by {sort}\n{table}\n")
    print(table, flush=True)


def _row(r: dict) -> str:
    peak = "CUDA max_memory_allocated" if r["device"].startswith("cuda") else "ru_maxrss"
    reduced = f" (configured: {r['configured_groups']} groups)" if r["groups"] != r["configured_groups"] else ""
    return (f"{r['setting']:>13} {r['stage']:>6}  {r['backbone']:>8} {r['image_size']:>4}px uv{r['uv_size']:<4} "
            f"{r['groups']}x{r['k']}={r['images']:<3} {r['s_per_step']:8.3f} s/step {r['images_per_s']:9.2f} img/s  "
            f"peak {r['peak_mb']:8.0f} MB ({peak}), {r['rasterizer']} rasterizer  [{r['steps']} timed after "
            f"{r['warmup']}]{reduced}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--only", action="append", help="setting:stage, e.g. paper:coarse (repeatable)")
    parser.add_argument("--warmup", type=int, help="warm-up steps (default: by device and setting)")
    parser.add_argument("--steps", type=int, help="timed steps (default: by device and setting)")
    parser.add_argument("--groups", type=int, help="identity groups per step (default: the config's, except "
                        "where it does not fit, see GROUPS)")
    parser.add_argument("--in-process", action="store_true", help="run here instead of one process per config")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoders")
    parser.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="torch.backends.cudnn.benchmark, as trainer.benchmark sets it for training (CUDA)")
    parser.add_argument("--profile", metavar="DIR", help="also write DIR/profile_<setting>_<stage>.txt "
                        "(torch.profiler op table of 3 more steps)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for train.json / train.md ('': none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device(args.device)
    combos = [tuple(o.split(":")) for o in args.only] if args.only else list(EXPERIMENTS)
    print(f"bench_train on {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {args.threads} threads")
          + ": one training step = forward + backward + clip + Adam; images/s counts input images")
    results = []
    report = Report("train", columns=["setting", "stage", "device", "backbone", "image_size", "uv_size", "images",
                                      "s_per_step", "images_per_s", "peak_mb", "rasterizer", "autocast", "compiled",
                                      "cudnn_benchmark", "steps",
                                      "finite"])
    report.note("one training step = forward + backward + clip + Adam on random batches; images = groups x K input "
                "images; peak_mb: CUDA max_memory_allocated, else ru_maxrss of the configuration's own process; "
                "CUDA: bf16 autocast + channels_last encoders and pretrained networks; every field is in the JSON rows")
    for setting, stage in combos:
        warmup, steps = STEPS[(device.type, setting)]
        warmup = warmup if args.warmup is None else args.warmup
        steps = steps if args.steps is None else args.steps
        groups = args.groups or GROUPS.get((device.type, setting, stage))
        if args.in_process or len(combos) == 1:
            profile_to = None
            if args.profile:
                os.makedirs(args.profile, exist_ok=True)
                profile_to = os.path.join(args.profile, f"profile_{setting}_{stage}.txt")
            result = measure(setting, stage, device, warmup, steps, groups, args.compile, profile_to)
        else:  # a fresh process per configuration: ru_maxrss is a per-process high-water mark
            cmd = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads), "--only",
                   f"{setting}:{stage}", "--warmup", str(warmup), "--steps", str(steps), "--out", ""]
            cmd += ["--groups", str(groups)] if groups else []
            cmd += ["--compile"] if args.compile else []
            cmd += [] if args.cudnn_benchmark else ["--no-cudnn-benchmark"]
            cmd += ["--profile", args.profile] if args.profile else []
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if proc.returncode != 0:
                why = "killed (out of memory?)" if proc.returncode == -9 else proc.stderr.strip()[-600:]
                print(f"{setting:>13} {stage:>6}  FAILED: {why}", flush=True)
                report.note(f"{setting} {stage}: FAILED: {why.splitlines()[-1] if why else proc.returncode}")
                continue
            result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
        results.append(result)
        if len(combos) == 1:
            print(json.dumps(result))
        print(_row(result), flush=True)
        report.add(**result)
    if args.out:
        print("wrote", *report.write(args.out))


if __name__ == "__main__":
    main()
