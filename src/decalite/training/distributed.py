"""DDP around modules that hold constants.

FLAME, the albedo basis and the renderer's UV tables are non-persistent buffers (about 56 MB with FLAME 2020 and
the BFM albedo). DDP broadcasts every buffer from rank 0 at start-up and, with ``broadcast_buffers``, at every
forward; these constants are identical on every rank, so broadcasting them only costs bandwidth. Listing them in
DDP's ignore set keeps the real buffers (BatchNorm statistics) in sync and skips the constants.
"""

from __future__ import annotations

from torch import nn
from torch.nn.parallel import DistributedDataParallel


def constant_buffer_names(module: nn.Module) -> list[str]:
    """Fully qualified names of every non-persistent buffer of ``module`` (decalite keeps constants there)."""
    names = []
    for prefix, sub in module.named_modules():
        for name in sub._non_persistent_buffers_set:
            if sub._buffers.get(name) is not None:
                names.append(f"{prefix}.{name}" if prefix else name)
    return sorted(names)


def exclude_constants_from_ddp(module: nn.Module, frozen_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Tell DDP (wrapping ``module`` later) not to broadcast its constants. Returns their names.

    Args:
        module: the module DDP will wrap.
        frozen_prefixes: submodules (e.g. ``"pretrained."``) whose parameters and buffers are frozen pretrained
            weights, identical on every rank, to leave out as well.
    """
    names = constant_buffer_names(module)
    if frozen_prefixes:
        state = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
        names = sorted(set(names) | {n for n in state if n.startswith(frozen_prefixes)})
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)
    return names
