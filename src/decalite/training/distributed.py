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


def exclude_constants_from_ddp(module: nn.Module) -> list[str]:
    """Tell DDP (wrapping ``module`` later) not to broadcast its constant buffers. Returns their names."""
    names = constant_buffer_names(module)
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)
    return names
