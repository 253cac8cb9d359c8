"""Loading network weights: the official DECA release (``deca_model.tar``) and decalite's own checkpoints.

The official file is a ``torch.save`` of a dict with the state dicts ``E_flame`` (coarse encoder), ``E_detail``
(detail encoder) and ``D_detail`` (detail decoder). Their keys are mapped to decalite's modules by an explicit
table; anything that does not map is reported. Files are read with ``torch.load(weights_only=True)``, so a file
that holds anything but tensors and plain containers is refused without running code from it, after
:func:`~decalite.io.torch_files.check_torch_file` has compared the sizes the file declares with the bytes it
holds (torch would otherwise allocate them: inflated zip records, legacy-format storages).
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from decalite.errors import AssetError
from decalite.io.torch_files import check_torch_file

log = logging.getLogger(__name__)

#: ``LoadReport.format`` of an official ``deca_model.tar``.
OFFICIAL_FORMAT = "official DECA"
OFFICIAL_PARTS = {"E_flame": "coarse_encoder", "E_detail": "detail_encoder", "D_detail": "detail_decoder"}
#: The entry of a decalite checkpoint that records what it was trained with: ``{"version": decalite's version,
#: "settings": {dotted config key: value}}`` (written by the training stages, read by :func:`read_training_record`).
SETTINGS_KEY = "decalite"
_HOW_TO_OBTAIN = (
    "The official DECA model (deca_model.tar) is distributed by its authors after registration "
    "(https://deca.is.tue.mpg.de); decalite's own checkpoints come from `make train`"
)


def _encoder_key(key: str) -> str:
    """Official ResnetEncoder key -> decalite ResnetEncoder key (``encoder.*`` -> ``backbone.*``, ``layers.*`` -> ``head.*``)."""
    if key.startswith("encoder."):
        return "backbone." + key[len("encoder."):]
    if key.startswith("layers."):
        return "head." + key[len("layers."):]
    return key


def _decoder_key(key: str) -> str:
    """Official Generator key -> decalite DetailDecoder key.

    ``l1.0`` is the linear layer; ``conv_blocks`` is one Sequential: index 0 the input BatchNorm, then per stage k
    (0..4) the convolution at 2 + 4k and its BatchNorm at 3 + 4k, and the output convolution at 21.
    """
    if key.startswith("l1.0."):
        return "fc." + key[len("l1.0."):]
    match = re.match(r"conv_blocks\.(\d+)\.(.+)", key)
    if not match:
        return key
    index, rest = int(match.group(1)), match.group(2)
    if index == 0:
        return f"bn_in.{rest}"
    if index == 21:
        return f"out_conv.{rest}"
    stage, offset = divmod(index - 2, 4)
    if offset == 0:
        return f"stages.{stage}.conv.{rest}"
    if offset == 1:
        return f"stages.{stage}.bn.{rest}"
    return key


_KEY_MAPS = {"E_flame": _encoder_key, "E_detail": _encoder_key, "D_detail": _decoder_key}


@dataclass
class LoadReport:
    """What a weight file provided, per decalite module."""

    source: str
    format: str
    loaded: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)
    mismatched: dict[str, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not any(self.missing.values()) and not any(self.mismatched.values())

    def summary(self) -> str:
        parts = [f"{self.source} ({self.format}):"]
        for name, n in self.loaded.items():
            extra = []
            for label, table in (("missing", self.missing), ("unexpected", self.unexpected), ("shape mismatch", self.mismatched)):
                if table.get(name):
                    extra.append(f"{len(table[name])} {label} (e.g. {table[name][0]})")
            parts.append(f"{name}: {n} tensors" + (f", {', '.join(extra)}" if extra else ""))
        return " ".join(parts)


def _read(path: Path) -> Mapping:
    if not path.is_file():
        raise AssetError(path, "file not found", what="network weights", how_to_obtain=_HOW_TO_OBTAIN)
    try:
        check_torch_file(path)
    except AssetError as err:
        raise err.add_context(what="network weights", how_to_obtain=_HOW_TO_OBTAIN)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise AssetError(path, f"refused: it holds more than tensors and plain containers ({exc})".split("\n")[0],
                         what="network weights", expected="a state dict of tensors",
                         how_to_obtain=_HOW_TO_OBTAIN) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise AssetError(path, f"unreadable or truncated ({type(exc).__name__}: {exc})".split("\n")[0],
                         what="network weights", how_to_obtain=_HOW_TO_OBTAIN) from None
    if not isinstance(data, Mapping):
        raise AssetError(path, f"holds a {type(data).__name__}, not a dict of state dicts", what="network weights",
                         expected="E_flame/E_detail/D_detail state dicts, or a decalite checkpoint",
                         how_to_obtain=_HOW_TO_OBTAIN)
    return data


def _check_state_dict(path: Path, name: str, state: object) -> Mapping[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AssetError(path, f"'{name}' is not a state dict of tensors", what="network weights",
                         expected="a mapping from parameter names to tensors", how_to_obtain=_HOW_TO_OBTAIN)
    return state


def _decalite_parts(state: Mapping[str, torch.Tensor], names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """Split a flat state dict (e.g. a Lightning checkpoint) into the parts named ``names``, at any prefix depth."""
    parts: dict[str, dict[str, torch.Tensor]] = {n: {} for n in names}
    for key, value in state.items():
        for name in names:
            marker = f"{name}."
            pos = key.find(marker)
            if pos == 0 or (pos > 0 and key[pos - 1] == "."):
                parts[name][key[pos + len(marker):]] = value
                break
    return parts


def _decoder_side(stage_keys: set[int]) -> int:
    """Side of the map a detail decoder with stages ``0..max(stage_keys)`` makes (8 doubled per stage)."""
    return 8 * 2 ** (max(stage_keys) + 1)


def _check_decoder_size(path: Path, state: Mapping[str, torch.Tensor] | None, module: nn.Module | None) -> None:
    """Refuse detail-decoder weights for another output size than the model's (they would load only in part)."""
    if not state or module is None:
        return
    pattern = re.compile(r"stages\.(\d+)\.conv\.weight")
    stages = lambda keys: {int(m.group(1)) for k in keys if (m := pattern.fullmatch(k))}  # noqa: E731
    found, own = stages(state), stages(module.state_dict())
    if found and own and max(found) != max(own):
        have, want = _decoder_side(found), _decoder_side(own)
        raise AssetError(path, f"its detail decoder makes {have} x {have} displacement maps, the model's "
                               f"model.detail_size={want}", what="network weights",
                         expected=f"detail-decoder weights for {want} x {want} maps",
                         how_to_obtain=f"set model.detail_size={have} (the size this checkpoint was trained with)")


def read_training_record(path: str | Path) -> dict | None:
    """What a decalite checkpoint records of its training (``{"version": ..., "settings": {...}}``), or None for
    a file without a record (an official ``deca_model.tar``, an older decalite checkpoint).

    Raises:
        AssetError: the file is missing, unsafe or unreadable (as :func:`load_weights`), or its record is malformed.
    """
    path = Path(path)
    record = _read(path).get(SETTINGS_KEY)
    if record is None:
        return None
    if not isinstance(record, Mapping) or not isinstance(record.get("settings"), Mapping):
        raise AssetError(path, f"its '{SETTINGS_KEY}' entry is not a training record", what="network weights",
                         expected='{"version": ..., "settings": {key: value}}', how_to_obtain=_HOW_TO_OBTAIN)
    return {"version": str(record.get("version", "unknown")), "settings": dict(record["settings"])}


def load_weights(path: str | Path, modules: Mapping[str, nn.Module], strict: bool = False) -> LoadReport:
    """Load an official ``deca_model.tar`` or a decalite checkpoint into ``modules``.

    Args:
        path: the weight file.
        modules: decalite modules by name: any of "coarse_encoder", "detail_encoder", "detail_decoder" (and, for
            decalite checkpoints, any other named submodule).
        strict: raise AssetError when a module's weights are missing or have the wrong shapes.

    Returns:
        A LoadReport; its summary is logged.
    """
    path = Path(path)
    data = _read(path)
    if any(k in data for k in OFFICIAL_PARTS):
        fmt = OFFICIAL_FORMAT
        parts, original = {}, {}
        for official, ours in OFFICIAL_PARTS.items():
            if official in data and ours in modules:
                state = _check_state_dict(path, official, data[official])
                parts[ours] = {_KEY_MAPS[official](k): v for k, v in state.items()}
                original[ours] = {_KEY_MAPS[official](k): k for k in state}
    else:
        fmt = "decalite"
        state = data.get("state_dict", data)
        state = _check_state_dict(path, "state_dict", state)
        parts = _decalite_parts(state, list(modules))
        original = {}
    _check_decoder_size(path, parts.get("detail_decoder"), modules.get("detail_decoder"))
    report = LoadReport(source=str(path), format=fmt)
    for name, module in modules.items():
        given = parts.get(name, {})
        own = module.state_dict()
        usable = {k: v for k, v in given.items() if k in own and own[k].shape == v.shape}
        report.loaded[name] = len(usable)
        report.missing[name] = sorted(set(own) - set(usable))
        names = original.get(name, {})
        report.unexpected[name] = sorted(names.get(k, k) for k in set(given) - set(own))  # as named in the file
        report.mismatched[name] = sorted(k for k, v in given.items() if k in own and own[k].shape != v.shape)
        module.load_state_dict(usable, strict=False)
    log.info(report.summary())
    if strict and not report.complete:
        raise AssetError(path, f"incomplete weights: {report.summary()}", what="network weights",
                         how_to_obtain=_HOW_TO_OBTAIN)
    return report
