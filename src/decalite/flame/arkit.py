"""ARKit's 52 blendshape weights from a head whose expressions are ARKit-named blendshapes (the ICT head).

ICT names its shapes like ARKit with ``_L`` / ``_R`` for ``Left`` / ``Right`` and splits ``browInnerUp`` and
``cheekPuff`` into sides (ARKit's weight is their mean here). Joint-driven weights: ``jawOpen`` is the jaw's
rotation about +x over the head's ``jaw_open_angle`` (the rotation that reproduces ICT's jawOpen); ``eyeLook*``
come from the eye joints' rotations over :data:`EYE_LOOK_FULL_DEG` (ARKit defines no angle: a convention).
``tongueOut`` has no ICT shape and is always 0. Weights are clamped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Apple ARKit's 52 blend shape locations (ARFaceAnchor.BlendShapeLocation), in ARKit's order of documentation.
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
#: The eye rotation (degrees) that is an eyeLook weight of 1.
EYE_LOOK_FULL_DEG = 30.0


def arkit_name(name: str) -> str:
    """ICT's spelling -> ARKit's (``mouthSmile_L`` -> ``mouthSmileLeft``); other names are returned unchanged."""
    if name.endswith("_L"):
        return name[:-2] + "Left"
    if name.endswith("_R"):
        return name[:-2] + "Right"
    return name


def is_arkit_head(expression_names: Sequence[str]) -> bool:
    """Whether a head's expression names are ARKit blendshapes (every name maps into ARKit's, once unsided)."""
    if not expression_names:
        return False
    known = set(ARKIT_NAMES) | {"browInnerUpLeft", "browInnerUpRight", "cheekPuffLeft", "cheekPuffRight"}
    return all(arkit_name(n) in known for n in expression_names)


def _eye_angles(eye_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3) axis-angle of one eye -> (yaw, pitch) in degrees: yaw > 0 looks towards +x (the subject's left),
    pitch > 0 looks down (a rotation about +x turns +z towards -y)."""
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    gaze = axis_angle_to_rotation_matrix(eye_pose)[..., :, 2]  # (B, 3): where +z (forward) turns to
    yaw = torch.rad2deg(torch.atan2(gaze[:, 0], gaze[:, 2]))
    pitch = torch.rad2deg(torch.atan2(-gaze[:, 1], torch.hypot(gaze[:, 0], gaze[:, 2])))
    return yaw, pitch


def arkit_weights(expression: torch.Tensor, expression_names: Sequence[str], jaw_pose: torch.Tensor,
                  jaw_open_angle: float, eye_pose: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 52) ARKit weights in :data:`ARKIT_NAMES` order, clamped to [0, 1].

    Args:
        expression: (B, E) expression coefficients of an ARKit-named head. expression_names: its (E,) names.
        jaw_pose: (B, 3) jaw axis-angle. jaw_open_angle: the rotation about +x that is jawOpen = 1 (radians).
        eye_pose: (B, 6) left and right eye axis-angles (None: looking ahead).
    """
    batch = expression.shape[0]
    out = expression.new_zeros(batch, len(ARKIT_NAMES))
    index = {n: i for i, n in enumerate(ARKIT_NAMES)}
    split: dict[str, list[torch.Tensor]] = {}
    for k, name in enumerate(expression_names[: expression.shape[1]]):
        target = arkit_name(name)
        if target in index:
            out[:, index[target]] = expression[:, k]
        elif target.removesuffix("Left").removesuffix("Right") in index:
            split.setdefault(target.removesuffix("Left").removesuffix("Right"), []).append(expression[:, k])
    for target, parts in split.items():
        out[:, index[target]] = torch.stack(parts).mean(0)
    out[:, index["jawOpen"]] = jaw_pose[:, 0] / float(jaw_open_angle)
    if eye_pose is not None:
        for side, pose, outward in (("Left", eye_pose[:, :3], 1.0), ("Right", eye_pose[:, 3:6], -1.0)):
            yaw, pitch = _eye_angles(pose)
            out[:, index[f"eyeLookOut{side}"]] = outward * yaw / EYE_LOOK_FULL_DEG
            out[:, index[f"eyeLookIn{side}"]] = -outward * yaw / EYE_LOOK_FULL_DEG
            out[:, index[f"eyeLookDown{side}"]] = pitch / EYE_LOOK_FULL_DEG
            out[:, index[f"eyeLookUp{side}"]] = -pitch / EYE_LOOK_FULL_DEG
    return out.clamp(0.0, 1.0)


def limit_mouth_close(expression: torch.Tensor, expression_names: Sequence[str], jaw_opening: torch.Tensor,
                      jaw_open_angle: float) -> torch.Tensor:
    """``mouthClose`` held at most at the jaw's opening (in jawOpen units): ARKit's mouthClose closes the lips of
    an open jaw; on a closed jaw it pushes the lips through each other (ICT's shape folds the mouth corners).

    Args:
        expression: (B, E). jaw_opening: (B,) jaw rotation about +x (radians). Returns a new (B, E) tensor.
    """
    if "mouthClose" not in expression_names[: expression.shape[1]]:
        return expression
    out = expression.clone()
    k = list(expression_names).index("mouthClose")
    out[:, k] = torch.minimum(out[:, k], (jaw_opening / float(jaw_open_angle)).clamp(min=0.0))
    return out
