"""Analysis-by-synthesis fitting on faces rendered from known codes (generated head, untrained networks)."""

from __future__ import annotations

import torch

from decalite.apps.fitting import FitConfig, fit, mean_face_code
from decalite.flame.albedo import AlbedoModel
from decalite.flame.generated import generate_head
from decalite.flame.layer import FlameLayer
from decalite.model.deca import DECA
from decalite.nets.codes import CodeSizes
from decalite.render.renderer import Renderer
from decalite.types import FaceCode


def _setup():
    head = generate_head(0)
    sizes = CodeSizes(n_shape=20, n_tex=10, n_exp=10)
    deca = DECA(FlameLayer(head.model, head.embedding, 20, 10),
                Renderer(head.uv, head.face_eye_mask, image_size=64, uv_size=64, backend="torch"),
                sizes, AlbedoModel(head.albedo, 10, uv_size=64), backbone="resnet18").eval()
    g = torch.Generator().manual_seed(3)
    truth = mean_face_code(deca, torch.zeros(2, 68, 2))
    truth.shape = torch.randn(2, 20, generator=g)
    truth.exp = torch.randn(2, 10, generator=g) * 0.8
    truth.pose = torch.tensor([[0.1, 0.3, 0.0, 0.15, 0.0, 0.0], [-0.1, -0.25, 0.05, 0.05, 0.0, 0.0]])
    truth.cam = torch.tensor([[6.0, 0.01, 0.02], [5.0, -0.02, 0.0]])
    return deca, truth


def test_fitting_landmarks_of_known_faces_from_the_mean_face():
    deca, truth = _setup()
    with torch.no_grad():
        target = deca.geometry(truth)[1]
    result = fit(deca, torch.zeros(2, 3, 64, 64), target, cfg=FitConfig(steps=150, lr=0.01))
    assert (result.error_before > 0.05).all()
    assert (result.error_after < 0.3 * result.error_before).all()
    assert result.error_after.max() < 0.03
    assert result.history[-1] < result.history[0]


def test_fitting_with_the_photometric_term_reduces_the_image_error():
    deca, truth = _setup()
    truth.tex = torch.randn(2, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = deca.decode(truth, detail=False)
    masks = target.render.alpha
    init = mean_face_code(deca, target.landmarks2d)
    cfg = FitConfig(steps=80, lr=0.02, photometric_after=0.3)
    result = fit(deca, target.render.image, target.landmarks2d, masks, init=init, cfg=cfg)
    with torch.no_grad():
        start = deca.decode(FaceCode(**{**init.__dict__}), detail=False).render.image
        end = deca.decode(result.code, detail=False).render.image
    err = lambda img: ((img - target.render.image).abs() * masks).sum() / masks.sum()  # noqa: E731
    assert err(end) < 0.6 * err(start)


def test_the_command_line_fit_weights_are_the_library_defaults():
    """decalite-reconstruct's fit_loss starts from DEFAULT_FIT_TERMS (declared once) and takes overrides."""
    from decalite.apps.fitting import DEFAULT_FIT_TERMS, FitConfig
    from decalite.cli.schema import compose_typed
    from decalite.config import ReconstructConfig

    cfg = compose_typed("reconstruct", ["input=x.jpg"], ReconstructConfig)
    assert cfg.fit_loss.terms == DEFAULT_FIT_TERMS == FitConfig().terms
    cfg = compose_typed("reconstruct", ["input=x.jpg", "fit_loss.terms.photometric=0"], ReconstructConfig)
    assert cfg.fit_loss.terms == {**DEFAULT_FIT_TERMS, "photometric": 0.0}


def test_identity_fit_recovers_shape_better_than_the_mean_face():
    """fit_identity on 4 landmark sets of each of 2 people (shared shape): the NoW-style neutral-shape error
    is well below the mean face's."""
    import numpy as np

    from decalite.apps.export import NOW_LANDMARKS
    from decalite.apps.fitting import IdentityFitConfig, fit_identity
    from decalite.evaluation.now import now_distances
    from decalite.evaluation.scores import _scan

    torch.manual_seed(0)
    deca, _ = _setup()
    faces = deca.flame.faces.numpy()
    g = torch.Generator().manual_seed(5)

    def error(shape, scan, scan_lmk):
        with torch.no_grad():
            pred = deca.flame(shape=shape)
        lmk = pred.landmarks3d[0, list(NOW_LANDMARKS)].numpy()
        return float(np.median(now_distances(pred.vertices[0].numpy(), faces, lmk, scan, scan_lmk)))

    fitted, mean = [], []
    cfg = IdentityFitConfig(steps=250, pose_steps=40)
    cfg.terms["photometric"] = 0.0
    for person in range(2):
        truth = mean_face_code(deca, torch.zeros(4, 68, 2))
        truth.shape = torch.randn(1, 20, generator=g).expand(4, -1)
        truth.exp = torch.randn(4, 10, generator=g) * 0.5
        truth.pose[:, :3] = (torch.rand(4, 3, generator=g) - 0.5) * torch.tensor([0.6, 1.2, 0.2])
        truth.pose[:, 3] = torch.rand(4, generator=g) * 0.3
        truth.cam = torch.tensor([[6.0, 0.0, 0.0]]).expand(4, -1)
        with torch.no_grad():
            target = deca.geometry(truth)[1]
            true = deca.flame(shape=truth.shape[:1])
        scan = _scan(true.vertices[0].numpy(), faces, person)
        scan_lmk = true.landmarks3d[0, list(NOW_LANDMARKS)].numpy()
        result = fit_identity(deca, None, target, cfg=cfg)
        assert torch.equal(result.code.shape[0], result.code.shape[3])  # one shape for the person
        assert result.error_after.max() < 0.3 * result.error_before.min()
        fitted.append(error(result.code.shape[:1], scan, scan_lmk))
        mean.append(error(torch.zeros(1, 20), scan, scan_lmk))
    assert np.mean(fitted) < 0.7 * np.mean(mean), (fitted, mean)
