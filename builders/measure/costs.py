"""What a network costs to run, counted on it: multiply-accumulates and peak activation memory
of one forward pass (torch imported where used)."""

from __future__ import annotations

__all__ = ["count_macs", "activation_mb"]


def activation_mb(net, in_channels: int, spatial: tuple[int, ...], device) -> float | None:
    """Peak activation memory of one forward pass at batch 1 in eager PyTorch (no_grad,
    float32), in MB (10^6 bytes): the live tensors other than parameters, buffers and the
    input, tracked allocation by allocation with torch's ``MemTracker``. None where that
    tracker is not available (it lives in ``torch.distributed._tools``)."""
    import torch

    try:
        from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType
    except ImportError:
        return None
    x = torch.zeros(1, in_channels, *spatial, device=device)
    net.eval()
    tracker = MemTracker()
    tracker.track_external(net, x)
    with tracker, torch.no_grad():
        net(x)
    peak = tracker.get_tracker_snapshot("peak")
    dev = next(iter(peak))
    return (peak[dev].get(_MemRefType.ACT, 0) + peak[dev].get(_MemRefType.TEMP, 0)) / 1e6


def count_macs(net, in_channels: int, spatial: tuple[int, int, int], device) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (torch's FLOP counter / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, in_channels, *spatial, device=device))
    return int(counter.get_total_flops() // 2)
