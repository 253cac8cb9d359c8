"""Typed configuration, declared once: the shared config groups (``conf/flame``, ``conf/renderer``,
``conf/model``, ``conf/paths``) and the options of the reconstruction tools (``conf/reconstruct.yaml``).

Plain dataclasses: library code takes them (or plain values), never an OmegaConf object. ``decalite.cli.schema``
registers them as Hydra structured configs, so the YAML files are validated against these fields (a misspelt
key is rejected by name) and a command-line override is converted to the declared type. The values live in the
YAML files: a field without a default here is one the YAML must set (Hydra's ``???``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CodeSizes:
    """Sizes of the coarse code's parts (DECA: 100, 50, 50, 6, 3, 27 = 236) and of the detail code (128): the
    one declaration of DECA's sizes, which the other configs' defaults name."""

    n_shape: int = 100
    n_tex: int = 50
    n_exp: int = 50
    n_pose: int = 6
    n_cam: int = 3
    n_light: int = 27
    n_detail: int = 128

    @property
    def coarse(self) -> int:
        """Length of the coarse encoder's output."""
        return self.n_shape + self.n_tex + self.n_exp + self.n_pose + self.n_cam + self.n_light

    @property
    def detail_latent(self) -> int:
        """Input size of the detail decoder: jaw pose (3) + expression + detail code."""
        return 3 + self.n_exp + self.n_detail


@dataclass
class FlameConfig:
    """Which FLAME-format head to load and how much of it to use (``conf/flame``).

    Attributes:
        dir: a folder holding FLAME-format files (the licensed FLAME 2020 ones, or a head written by
            ``decalite-assets``); None uses the embedded head ``embedded`` names. Required (no default), so
            ``conf/flame/flame2020.yaml`` can demand it with ``???``.
        embedded: the embedded head used when ``dir`` is None: "ict" (ICT Face Model Light converted to FLAME's
            format, shipped with decalite) or "generated" (decalite's mannequin, for fast unit tests).
        seed: the generated head's seed.
        n_shape: identity components used (<= 300).
        n_exp: expression components used (<= 100 in FLAME 2020).
        n_tex: albedo components used.
        contour_convention: yaw-bin layout of the dynamic contour: "deca" (landmark_embedding.npy) or "smplx".
    """

    dir: str | None
    embedded: str = "ict"
    seed: int = 0
    n_shape: int = CodeSizes.n_shape
    n_exp: int = 44  # the embedded ICT head's expressions (53 less jawOpen and the 8 eyeLook*); DECA's FLAME: 50
    n_tex: int = CodeSizes.n_tex
    contour_convention: str = "deca"


@dataclass
class RendererConfig:
    """The differentiable renderer (``conf/renderer``).

    Attributes:
        backend: "auto" (nvdiffrast on CUDA when importable, else decalite's torch rasterizer), "torch" or
            "nvdiffrast".
        image_size: H = W of the rendered images (pixels).
        uv_size: U, side of the UV maps.
        cull_backfaces: "auto" (cull only on a closed mesh), "true" or "false".
        antialias: nvdiffrast's antialiasing (nvdiffrast only).
    """

    backend: str = "auto"
    image_size: int = 224
    uv_size: int = 256
    cull_backfaces: str = "auto"
    antialias: bool = False


@dataclass
class ModelConfig:
    """DECA's networks (``conf/model``).

    Attributes:
        backbone: encoder backbone ("resnet50" as DECA, "resnet18" for small CPU runs).
        n_shape, n_exp, n_tex: code sizes (the YAML ties them to the flame group's).
        n_detail: size of the detail code.
        detail_size: side of the detail decoder's displacement map (DECA: 256; 16-128 for small UV maps, see
            :data:`decalite.nets.detail_decoder.OUTPUT_SIZES`).
        checkpoint: an official ``deca_model.tar`` or a decalite checkpoint; None: untrained networks.
        fixed_displacement: DECA's ``fixed_displacement_256.npy``; None: the FLAME folder's file when present.
    """

    backbone: str = "resnet50"
    n_shape: int = FlameConfig.n_shape
    n_exp: int = FlameConfig.n_exp
    n_tex: int = FlameConfig.n_tex
    n_detail: int = CodeSizes.n_detail
    detail_size: int = 256
    checkpoint: str | None = None
    fixed_displacement: str | None = None


@dataclass
class PathsConfig:
    """Machine paths (``conf/paths``); code never holds a path.

    Attributes:
        cache_dir: where generated assets (the generated head) are kept.
        data_dir: datasets.
        log_dir: training runs.
        output_dir: this run's folder (set by Hydra).
    """

    cache_dir: str | None = None
    data_dir: str | None = None
    log_dir: str | None = None
    output_dir: str | None = None


@dataclass
class SaveConfig:
    """Which outputs ``decalite-reconstruct`` writes per face (``save.*`` in ``conf/reconstruct.yaml``).

    Attributes:
        obj: coarse mesh with UV texture and normal map. ply: coarse mesh. dense: dense detailed mesh.
        codes: the FaceCode (``_codes.npz``; with ``crop_matrix``, 2x3 photo pixels -> crop pixels, and
            ``photo_size``, (height, width), for detected crops). landmarks: 2D and 3D landmarks (crop frame, as DECA)
            and ``_lmk2d_image.txt`` (photo pixels). vis: the visualisation grid. vis_original: the render and
            landmarks over the full photo (``_vis_original.png``, DECA's ``render_orig``). depth: the depth image.
        arkit: ARKit's 52 blendshape weights (``_arkit.json``), on a head whose expressions are ARKit blendshapes
            (the ICT head; skipped on other heads).
        gltf: an animatable GLB (``<name>.glb``, :mod:`decalite.apps.gltf`): the mesh with UVs, the photo texture
            and the detail normal map, the expression components and FLAME's pose correctives as morph targets,
            FLAME's joints as a skin, posed as reconstructed (about 9 MB on the ICT head).
    """

    obj: bool
    ply: bool
    dense: bool
    codes: bool
    landmarks: bool
    vis: bool
    vis_original: bool
    depth: bool
    arkit: bool
    gltf: bool


#: The fit's loss weights (the only declaration: :class:`decalite.apps.fitting.FitConfig` and ``decalite-reconstruct``'s
#: ``fit_loss`` start from them). Terms and normalisations are DECA's training terms
#: (:mod:`decalite.losses.objective`), weighted for a per-image fit (the batch-sum regularisers are divided by the
#: batch size). ``landmark_robust``: Geman-McClure (scale 0.02) for detector outliers, e.g. ``landmark=0
#: landmark_robust=1``; ``photometric``: the skin-masked photometric term (0: landmarks only).
DEFAULT_FIT_TERMS: dict[str, float] = {
    "landmark": 1.0, "landmark_robust": 0.0, "eye_closure": 1.0, "lip_closure": 0.5, "photometric": 2.0,
    "reg_shape": 3e-4, "reg_exp": 3e-4, "reg_tex": 3e-5, "reg_light": 1.0,
}


@dataclass
class FitLossConfig:
    """The fit's loss weights by registry name (:mod:`decalite.losses.objective`; 0 skips a term), by default
    :data:`DEFAULT_FIT_TERMS` (``fit_loss.terms.photometric=0`` on the command line changes one)."""

    terms: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FIT_TERMS))


@dataclass
class ReconstructConfig:
    """``decalite-reconstruct`` (``conf/reconstruct.yaml``); the animation, transfer and demo tools extend it.

    Attributes:
        flame, model, renderer, paths: the config groups.
        input: an image, a folder, a list file or a video (None where a tool takes other inputs).
        output: the output folder.
        landmarks: "auto" (FAN when its weights are present, else "yunet"), "fan", "yunet", "dlib_cnn", "hog" (alias
            "dlib") or "none" (pre-cropped faces).
        all_faces: every face of an image, not only the most prominent.
        crop_scale: crop side / landmark box side (DECA: 1.25).
        every_n_frames: video sampling.
        batch_size: faces per batch.
        device: "auto", "cpu", "cuda" or "cuda:N".
        fit_steps, fit_lr, fit_lr_end, fit_detail: the analysis-by-synthesis fit (fit_lr_end: the learning rate
            decays to fit_lr_end * fit_lr, cosine; 1 keeps it constant); fit_loss: its loss weights
            (:data:`DEFAULT_FIT_TERMS`, e.g. ``fit_loss.terms.photometric=0`` for landmarks only).
        now: also write the NoW benchmark files.
        identity: all faces of the input are one person: one fit with a shared shape (and albedo), each image
            keeping its expression, pose, camera and light; also writes ``<input stem>_neutral.obj``.
        track: the input (a video, or a folder of frames) is one person followed through its frames: detected once,
            tracked, fitted as one identity and smoothed over time (:mod:`decalite.apps.reconstruct.track`).
        smooth, smooth_min_cutoff, smooth_beta: track=true's one-euro filter of expression, pose and camera (on/off,
            the still-signal cutoff in Hz, the speed coefficient; :func:`decalite.apps.smoothing.one_euro`).
        progress: show a progress bar.
        save: which outputs to write.
        threads: torch's CPU threads; 0 or null: chosen from the free CPUs (:mod:`decalite.threads`).
    """

    flame: FlameConfig
    model: ModelConfig
    renderer: RendererConfig
    paths: PathsConfig
    input: str | None
    output: str
    landmarks: str
    all_faces: bool
    crop_scale: float
    every_n_frames: int
    batch_size: int
    device: str
    fit_steps: int
    fit_lr: float
    fit_lr_end: float
    fit_loss: FitLossConfig = field(default_factory=FitLossConfig, kw_only=True)  # DEFAULT_FIT_TERMS
    fit_detail: bool
    now: bool
    identity: bool
    track: bool
    smooth: bool
    smooth_min_cutoff: float
    smooth_beta: float
    progress: bool
    save: SaveConfig
    threads: int | None
