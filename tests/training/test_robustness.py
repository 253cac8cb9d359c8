"""Training survives what goes wrong in real runs: a non-finite loss, a resume, a kill -9, DDP (also under a Hydra
multirun), and config typos. One tiny synthetic dataset (4 + 2 identities, 48 px) is written once for the module;
runs use the small backbone at 32 px with checkpoints every 2 steps and no validation.

Lightning DDP and the kill -9 run in subprocesses of ``python -m decalite.cli.train`` (a spawn or ``ddp`` launch
inside pytest would re-run pytest); the NaN and resume checks run in-process with probe subclasses of the
coarse module (``decalite.training.train.STAGES`` is patched) so they can look inside the optimiser.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

import decalite.training.train as train_mod
from decalite.cli._hydra import CONF_DIR
from decalite.cli.train import ensure_synthetic_data, run, stage_config
from decalite.errors import AssetError
from decalite.losses.objective import LossResult
from decalite.training.coarse import CoarseModule
from decalite.training.detail import DetailModule
from decalite.training.train import AtomicCheckpointIO

REPO = Path(__file__).resolve().parents[2]  # the repository root (never src/decalite: its types.py would shadow the stdlib)
DATA = ["data.synthetic.train_identities=4", "data.synthetic.val_identities=2", "data.synthetic.size=48",
        "data.synthetic.render_size=48", "data.synthetic.identities_per_shard=2"]
# synthetic_cpu, shrunk: 2 groups x K=4 per step, an epoch far longer than any run here (checkpoints land
# mid-epoch, as in real runs), no validation loop, no image grids, no progress bar (clean subprocess logs).
TINY = ["experiment=synthetic_cpu", "model=small", "renderer.image_size=32", "renderer.uv_size=32",
        "renderer.backend=torch", *DATA, "data.num_workers=0", "data.batch_size=2", "data.epoch_length=200",
        "++trainer.limit_val_batches=0", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        "callbacks.images.every_n_steps=0", "callbacks.model_checkpoint.every_n_train_steps=2", "threads=2",
        "logger=csv"]


def _paths(tmp: Path) -> list[str]:
    return [f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={os.environ['DECALITE_CACHE']}"]


def _cfg(tmp: Path, out: str, *overrides: str):
    """The composed config of an in-process run writing to ``tmp/<out>``."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, *_paths(tmp), *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / out)
    return cfg


def _cli(tmp: Path, *overrides: str, multirun: bool = False) -> list[str]:
    return [sys.executable, "-m", "decalite.cli.train", *(["-m"] if multirun else []), *TINY, *_paths(tmp),
            *overrides]


def _env() -> dict[str, str]:
    return {**os.environ, "HYDRA_FULL_ERROR": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _adam_steps(checkpoint: dict) -> set[float]:
    return {float(s["step"]) for s in checkpoint["optimizer_states"][0]["state"].values()}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The shared workspace: generated head (cache) and synthetic shards (data), written once."""
    tmp = tmp_path_factory.mktemp("robust")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, *_paths(tmp), "paths.output_dir=unused"])
    ensure_synthetic_data(cfg)
    return tmp


@pytest.fixture(autouse=True)
def _drop_run_folders(ws):
    """Each test's runs are removed after it (checkpoints are ~200 MB each); the shared data stays."""
    before = set(ws.iterdir())
    yield
    for path in set(ws.iterdir()) - before:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ probe modules


class _WeightProbe(pl.Callback):
    """Snapshots of the coarse encoder's parameters before and after every training batch (after = after the
    optimiser step), and the global step each batch ran at."""

    def __init__(self, record: dict) -> None:
        self.record = record

    @staticmethod
    def _snapshot(pl_module) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in pl_module.deca.coarse_encoder.named_parameters()}

    def on_train_start(self, trainer, pl_module) -> None:
        opt = trainer.optimizers[0]
        self.record["start_step"] = trainer.global_step
        self.record["checkpoint_io"] = type(trainer.strategy.checkpoint_io).__name__
        self.record["start_adam_steps"] = {float(s["step"]) for s in opt.state.values() if "step" in s}
        self.record["start_exp_avg"] = {i: s["exp_avg"].clone() for i, s in enumerate(opt.state.values())}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.record.setdefault("steps", []).append(trainer.global_step)
        self._before = self._snapshot(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        after = self._snapshot(pl_module)
        self.record.setdefault("changed", []).append(
            [n for n in after if not torch.equal(after[n], self._before[n])])
        self.record.setdefault("finite", []).append(all(bool(torch.isfinite(t).all()) for t in after.values()))


def _probe(monkeypatch, nan_at: int | None = None) -> dict:
    """Patch the coarse stage with a probe subclass; returns the dict it records into. ``nan_at``: the global
    step whose loss total is replaced by NaN (the graph kept, so without the guard NaN gradients would flow)."""
    record: dict = {}

    class Probe(CoarseModule):
        def configure_callbacks(self):
            return [_WeightProbe(record)]

        def compute(self, batch):
            result, metrics, visuals = super().compute(batch)
            if nan_at is not None and self.training and self.global_step == nan_at:
                result = LossResult(total=result.total * float("nan"), terms=result.terms)
            return result, metrics, visuals

    monkeypatch.setitem(train_mod.STAGES, "coarse", Probe)
    return record


# ----------------------------------------------------------------------------------------------- 1. NaN guard


def test_planted_nan_loss_skips_the_step_and_never_reaches_the_weights(ws, monkeypatch, caplog):
    record = _probe(monkeypatch, nan_at=1)
    with caplog.at_level(logging.WARNING, logger="decalite.training"):
        result = run(_cfg(ws, "nan", "trainer.max_steps=3"))
    assert record["steps"] == [0, 1, 2]
    assert result.skipped_steps == 1
    assert result.metrics["train/skipped_steps"] == 1.0
    assert any("non-finite loss at step 1" in r.getMessage() for r in caplog.records), caplog.text
    changed = record["changed"]
    assert changed[1] == [], f"the NaN step changed {changed[1][:5]}"  # bit-identical weights across the NaN step
    assert changed[0] and changed[2], "the finite steps must train the encoder"
    assert all(record["finite"])
    last = _load(Path(result.checkpoint))
    assert last["global_step"] == 3  # last.ckpt is refreshed at the end: 3 is not a multiple of every 2 steps
    assert _adam_steps(last) == {2.0}  # Adam stepped twice: the skipped step left its moments alone
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_each_stage_gives_gradients_to_exactly_its_networks(ws):
    """DDP fails on parameters without gradients (the detail networks in the coarse stage), and a DECA trained
    coarse then detail in one process must get its detail networks back."""
    from decalite.model.factory import build_deca

    cfg = _cfg(ws, "flags")
    built = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    deca = built[0] if isinstance(built, tuple) else built

    def grads(module) -> set[bool]:
        return {p.requires_grad for p in module.parameters()}

    CoarseModule(deca, stage_config(cfg)).setup("fit")
    assert grads(deca.coarse_encoder) == {True}
    assert grads(deca.detail_encoder) == grads(deca.detail_decoder) == {False}
    DetailModule(deca, stage_config(_cfg(ws, "flags_detail", "experiment=synthetic_cpu_detail"))).setup("fit")
    assert grads(deca.coarse_encoder) == {False}
    assert grads(deca.detail_encoder) == grads(deca.detail_decoder) == {True}


def test_channels_last_converts_every_image_network_and_keeps_the_losses(ws):
    """With a CUDA trainer, setup puts the encoders and pretrained networks in channels_last (StageModule.
    use_channels_last); here, on the CPU, the same conversion: every 4-D weight is NHWC afterwards and the step's
    losses are unchanged; with a CPU trainer nothing changes."""
    from decalite.model.factory import build_deca

    cfg = _cfg(ws, "nhwc")
    built = build_deca(cfg.flame, cfg.model, cfg.renderer, cfg.paths)
    deca = built[0] if isinstance(built, tuple) else built
    module = CoarseModule(deca, stage_config(cfg), {"extra": torch.nn.Conv2d(3, 4, 3)}).eval()
    gen = torch.Generator().manual_seed(0)
    size = int(cfg.renderer.image_size)
    batch = {"images": torch.rand(2, 2, 3, size, size, generator=gen),
             "landmarks": 0.5 * (2 * torch.rand(2, 2, 68, 2, generator=gen) - 1),
             "masks": torch.ones(2, 2, 1, size, size)}
    with torch.no_grad():
        before = module.compute(batch)[0]
    weights = [p for net in module.convolution_networks() for p in net.parameters()
               if p.dim() == 4 and p.shape[-1] > 1]  # 1 x 1 kernels are NCHW and NHWC at once
    nhwc = lambda: [p.is_contiguous(memory_format=torch.channels_last) for p in weights]  # noqa: E731
    from types import SimpleNamespace

    module._trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    module.setup("fit")  # a CPU trainer: layouts unchanged
    assert not any(nhwc())
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    module.setup("fit")  # a CUDA trainer: converted before Lightning moves the module and wraps it in DDP
    module._trainer = None
    assert len(weights) > 20 and all(nhwc())
    assert module.pretrained["extra"] in module.convolution_networks()
    with torch.no_grad():
        after = module.compute(batch)[0]
    assert set(after.terms) == set(before.terms)
    for name, value in before.terms.items():
        assert torch.allclose(after.terms[name], value, rtol=1e-4, atol=1e-5), name


# ------------------------------------------------------------------------------------------------- 2. resume


def test_resume_continues_step_count_and_optimizer_state(ws, monkeypatch):
    first = run(_cfg(ws, "resume_a", "trainer.max_steps=4"))
    ckdir = Path(first.checkpoint).parent
    assert sorted(p.name for p in ckdir.glob("*.ckpt")) == ["last.ckpt", "step0000004.ckpt"]  # older step files go
    last = _load(ckdir / "last.ckpt")
    assert last["global_step"] == 4 and _adam_steps(last) == {4.0}

    record = _probe(monkeypatch)
    resumed = run(_cfg(ws, "resume_b", "trainer.max_steps=6", f"resume={ckdir / 'last.ckpt'}"))
    assert record["checkpoint_io"] == "AtomicCheckpointIO"
    assert record["start_step"] == 4  # not 0
    assert record["steps"] == [4, 5]  # two more batches, not six
    assert record["start_adam_steps"] == {4.0}  # Adam's state came back with the checkpoint ...
    saved = last["optimizer_states"][0]["state"]
    for i, exp_avg in record["start_exp_avg"].items():
        torch.testing.assert_close(exp_avg, saved[i]["exp_avg"], rtol=0, atol=0)  # ... moments included
    final = _load(Path(resumed.checkpoint))
    assert final["global_step"] == 6 and _adam_steps(final) == {6.0}
    assert (Path(resumed.checkpoint).parent / "step0000006.ckpt").is_file()


# ------------------------------------------------------------------------------------------------ 3. kill -9


def test_checkpoint_writes_replace_the_file_even_with_tmpdir_on_another_filesystem(tmp_path, monkeypatch):
    """Lightning's writer stages in $TMPDIR and copies over the old file in place when that is another filesystem;
    decalite's writes beside the target and renames, so a kill leaves the old checkpoint or the new one."""
    if Path("/dev/shm").is_dir():
        monkeypatch.setattr(tempfile, "tempdir", "/dev/shm")  # tmpfs: not tmp_path's filesystem here
    writer, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    writer.save_checkpoint({"global_step": 2}, path)
    inode = path.stat().st_ino
    writer.save_checkpoint({"global_step": 4}, path)
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not a rewrite in place
    assert _load(path)["global_step"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]




@pytest.mark.slow
@pytest.mark.timeout(400)
def test_kill_9_loses_at_most_the_steps_since_the_last_checkpoint(ws, monkeypatch):
    run_dir = ws / "killed"
    ckdir = run_dir / "checkpoints"
    log_path = ws / "killed.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(_cli(ws, "trainer.max_steps=1000", f"hydra.run.dir={run_dir}"), cwd=REPO,
                                stdout=log_file, stderr=subprocess.STDOUT, env=_env())
        try:
            # Kill the moment step 4's checkpoint appears: ModelCheckpoint writes step0000004.ckpt, then
            # last.ckpt, so the kill lands while last.ckpt is being rewritten (or just after).
            deadline = time.monotonic() + 300
            while not (ckdir / "step0000004.ckpt").exists():
                assert proc.poll() is None, f"training exited early:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no checkpoint in time:\n{log_path.read_text()[-3000:]}"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    steps = {}
    for path in sorted(ckdir.iterdir()):
        if path.name.startswith(".") and path.suffix == ".tmp":
            continue  # a write the kill interrupted, beside the checkpoint it would have replaced
        assert path.suffix == ".ckpt", f"stray file {path.name}"
        steps[path.name] = _load(path)["global_step"]  # atomic writes: every checkpoint present is complete
    saved = max(v for k, v in steps.items() if k != "last.ckpt")
    assert saved >= 4
    resume_from = steps["last.ckpt"]
    assert resume_from >= 2 and saved - resume_from <= 2, steps  # at most one interval behind the newest

    record = _probe(monkeypatch)
    resumed = run(_cfg(ws, "killed_resume", f"trainer.max_steps={resume_from + 2}", f"resume={ckdir / 'last.ckpt'}"))
    assert record["start_step"] == resume_from
    assert record["start_adam_steps"] == {float(resume_from)}
    assert record["steps"] == [resume_from, resume_from + 1]
    assert _load(Path(resumed.checkpoint))["global_step"] == resume_from + 2


# ---------------------------------------------------------------------------------------------------- 4. DDP


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(".hydra"))


# Validate (the sanity check, then at step 2) over the whole validation set, with 2 groups per batch: 2 val
# identities in one shard give rank 0 one batch and rank 1 none without padding (issue 18: gloo crashed there).
VALIDATE = ["++trainer.limit_val_batches=1.0", "++trainer.num_sanity_val_steps=2", "++trainer.val_check_interval=2",
            "++trainer.check_val_every_n_epoch=null"]


def _val_rows(run: Path) -> list[dict[str, str]]:
    """The rows of the run's metrics.csv that hold a validation landmark error."""
    import csv

    files = list(run.rglob("metrics.csv"))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return [row for row in csv.DictReader(f) if row.get("val/landmark_nme")]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ddp_sim_runs_two_ranks_and_writes_one_run_folder(ws):
    logs = ws / "ddp_logs"
    cmd = _cli(ws, "trainer=ddp_sim", "trainer.max_steps=2", f"paths.log_dir={logs}", f"hydra.run.dir={logs}/run",
               *VALIDATE)
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, env=_env(), timeout=360)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in out and "Starting with 2 processes" in out
    assert _run_dirs(logs) == [logs / "run"]
    checkpoint = _load(logs / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2  # the parent's trainer stays at 0 under ddp_spawn; the ranks trained
    assert _adam_steps(checkpoint) == {2.0}
    metrics = list((logs / "run" / "csv").rglob("metrics.csv"))
    assert len(metrics) == 1 and "train/loss" in metrics[0].read_text().splitlines()[0]  # rank zero logs once
    rows = _val_rows(logs / "run")
    assert len(rows) == 1 and 0.0 < float(rows[0]["val/landmark_nme"]) < 2.0, rows  # validated once, at step 2


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ddp_sim_validates_three_shards_on_two_ranks(ws):
    """3 validation shards of one identity each on 2 ranks: rank 0 reads 2, rank 1 one, unless split evenly."""
    logs, data = ws / "ddp3_logs", ws / "data3"
    paths = [f"paths.data_dir={data}", f"paths.log_dir={logs}", f"paths.cache_dir={os.environ['DECALITE_CACHE']}"]
    cmd = [sys.executable, "-m", "decalite.cli.train", *TINY, *paths, "data.synthetic.val_identities=3",
           "data.synthetic.identities_per_shard=1", "data.batch_size=1", "trainer=ddp_sim", "trainer.max_steps=2",
           f"hydra.run.dir={logs}/run", *VALIDATE]
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, env=_env(), timeout=360)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert len(list(data.rglob("val*/*.tar")) or list(data.rglob("*val*.tar"))) == 3, sorted(data.rglob("*.tar"))
    rows = _val_rows(logs / "run")
    assert len(rows) == 1 and 0.0 < float(rows[0]["val/landmark_nme"]) < 2.0, rows


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_ddp_sim_multirun_writes_exactly_two_jobs(ws):
    logs = ws / "sweep_logs"
    sweep = logs / "sweep"
    cmd = _cli(ws, "optim.lr=1e-4,2e-4", "trainer=ddp_sim", "trainer.max_steps=2", f"paths.log_dir={logs}",
               f"hydra.sweep.dir={sweep}", *VALIDATE, multirun=True)
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, env=_env(), timeout=480)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert _run_dirs(logs) == [sweep / "0", sweep / "1"]
    assert list(logs.rglob("multirun.yaml")) == [sweep / "multirun.yaml"]  # no replayed second sweep tree
    lrs = set()
    for job in ("0", "1"):
        checkpoint = _load(sweep / job / "checkpoints" / "last.ckpt")
        assert checkpoint["global_step"] == 2
        lrs.add(checkpoint["optimizer_states"][0]["param_groups"][0]["initial_lr"])
        assert len(_val_rows(sweep / job)) == 1  # each job validated across its two ranks
    assert lrs == {1e-4, 2e-4}


# --------------------------------------------------------------------------------------------- 5. config typos


@pytest.mark.slow
def test_cli_rejects_an_unknown_key_by_name(ws):
    cmd = _cli(ws, "optim.lrr=1", f"hydra.run.dir={ws / 'typo'}")
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode != 0
    assert "Key 'lrr' not in 'OptimConfig'" in proc.stderr, proc.stderr[-2000:]  # the schema names the key
    assert not (ws / "typo" / "checkpoints").exists()


def test_appended_unknown_optimiser_key_is_rejected_by_name(ws):
    from decalite.cli.schema import ConfigError

    with pytest.raises(ConfigError, match="lrr"):
        run(_cfg(ws, "typo_plus", "+optim.lrr=1"))


def test_loss_term_typo_is_rejected_by_name(ws):
    with pytest.raises(KeyError, match="landmrk"):
        run(_cfg(ws, "typo_loss", "+loss.terms.landmrk=1.0"))


def test_missing_identity_weights_name_the_file(ws):
    with pytest.raises(AssetError, match="resnet50_ft_weight.pkl") as err:
        run(_cfg(ws, "noid", "loss.identity_net=vggface2", "loss.terms.identity=0.2"))
    assert "no path given" in str(err.value)
    missing = ws / "weights" / "resnet50_ft_weight.pkl"
    with pytest.raises(AssetError, match="file not found") as err:
        run(_cfg(ws, "noid2", "loss.identity_net=vggface2", "loss.terms.identity=0.2",
                 f"loss.identity_weights={missing}"))
    assert err.value.path == str(missing) and str(missing) in str(err.value)


def test_synthetic_data_of_another_head_is_refused_with_the_fix(ws, tmp_path):
    """Shards rendered from an older generated head (or another FLAME) are not silently mixed in."""
    from decalite.errors import AssetError
    from decalite.synth.splits import SOURCE_FILE

    cfg = _cfg(ws, "marker", f"data.synthetic.root={tmp_path / 'synth'}")
    ensure_synthetic_data(cfg)
    marker = tmp_path / "synth" / "train" / SOURCE_FILE
    assert marker.read_text().startswith("ict_head_v")  # the default head
    ensure_synthetic_data(cfg)  # same head: kept
    marker.write_text("generated_head_v4_seed0\n")
    with pytest.raises(AssetError, match="generated_head_v4_seed0.*delete"):
        ensure_synthetic_data(cfg)


def test_synthetic_data_of_other_settings_is_refused_and_an_interrupted_write_resumes(ws, tmp_path):
    """Shards written for another data.synthetic (e.g. fewer identities) are not silently trained on; a split
    whose writing was interrupted is completed by the next run, keeping its finished shards."""
    import json

    root = tmp_path / "synth"
    cfg = _cfg(ws, "settings", f"data.synthetic.root={root}")
    ensure_synthetic_data(cfg)
    train = root / "train"
    manifest = json.loads((train / "manifest.json").read_text())
    assert manifest["samples"] == 4 and len(manifest["shards"]) == 2
    with pytest.raises(AssetError, match="identities: 4 there, 6 configured.*delete") as err:
        ensure_synthetic_data(_cfg(ws, "settings6", f"data.synthetic.root={root}", "data.synthetic.train_identities=6"))
    assert err.value.path == str(train)
    with pytest.raises(AssetError, match="size: 48 there, 40 configured"):
        ensure_synthetic_data(_cfg(ws, "settings40", f"data.synthetic.root={root}", "data.synthetic.size=40"))
    with pytest.raises(AssetError, match="shape_std: 1.0 there, 2.0 configured"):  # another identity world
        ensure_synthetic_data(_cfg(ws, "std2", f"data.synthetic.root={root}", "data.synthetic.shape_std=2.0"))
    with pytest.raises(AssetError, match="detail_width: 1.0 there, 3.0 configured"):  # another detail world
        ensure_synthetic_data(_cfg(ws, "width3", f"data.synthetic.root={root}", "data.synthetic.detail_width=3.0"))
    with pytest.raises(AssetError, match="yaw: 40.0 there, 15.0 configured"):  # any generator setting
        ensure_synthetic_data(_cfg(ws, "yaw", f"data.synthetic.root={root}", "+data.synthetic.yaw=15.0"))
    with pytest.raises(KeyError, match="data.synthetic.yawn: not a synthetic-data setting"):  # a typo
        ensure_synthetic_data(_cfg(ws, "yawn", f"data.synthetic.root={root}", "+data.synthetic.yawn=15.0"))
    # a manifest written before a setting existed reads as that setting's default (such data stays usable)
    older = json.loads((train / "manifest.json").read_text())
    del older["config"]["detail_width"], older["config"]["detail_noise"]
    (train / "manifest.json").write_text(json.dumps(older))
    ensure_synthetic_data(cfg)
    manifest = json.loads((train / "manifest.json").read_text())

    # interrupted after the first shard: the manifest lists one shard, the second tar is missing
    first, second = manifest["shards"]
    kept = (train / first["name"]).stat().st_mtime_ns
    (train / second["name"]).unlink()
    (train / "manifest.json").write_text(json.dumps({**manifest, "shards": [first], "samples": 2,
                                                     "images": first["images"]}))
    ensure_synthetic_data(cfg)
    resumed = json.loads((train / "manifest.json").read_text())
    assert resumed["samples"] == 4 and [s["sha256"] for s in resumed["shards"]] == [first["sha256"], second["sha256"]]
    assert (train / first["name"]).stat().st_mtime_ns == kept  # the finished shard was not rewritten
