"""A weight-sharing supernet holding every ``mednns`` architecture (OFA's elastic ResNet).

The supernet is the space's largest network (:func:`medbench.spaces.mednns.largest`: the
stem's residual block, every stage at its deepest, width 1.0 everywhere, expand ratio 0.35),
an ordinary :class:`~medbench.spaces.nets.mednns.MedNNSResNet`. An architecture uses, as
in Once-for-All:

- the first blocks of each stage (``d``: the last ones are dropped) and the stem's residual
  block only if it keeps it;
- the first output channels of every convolution and the input channels that carry its
  inputs (``w`` sets the stem's and stages' widths, ``e`` each block's bottleneck width);
- the matching slices of every batch norm (affine parameters and running statistics) and the
  first input features of the classifier.

Channels are taken in their stored order (OFA re-sorts them by importance before shrinking
widths; this supernet does not). :func:`subnet_parameters` maps an architecture's standalone
network, name by name, onto views of the supernet's tensors, so :func:`forward` trains the
shared weights through ``torch.func.functional_call`` (gradients and batch-norm statistics
land in the supernet's slices) and :func:`extract` copies the same slices into a standalone
network that computes the same function (tested). :func:`recalibrate` re-estimates an
extracted network's batch-norm statistics on training images, which the public MedNNS zoo
code skipped.
"""

from __future__ import annotations

import torch
from torch import nn

from medbench.spaces import mednns
from medbench.spaces.nets.mednns import MedNNSResNet

__all__ = ["build_supernet", "subnet_parameters", "forward", "extract", "recalibrate"]


def build_supernet(in_channels: int, n_classes: int, dims: int = 2) -> MedNNSResNet:
    """The supernet: the space's largest network."""
    return MedNNSResNet(mednns.largest(), in_channels, n_classes, dims=dims)


def _skeleton(arch: mednns.Arch, supernet: MedNNSResNet) -> MedNNSResNet:
    """The standalone network of ``arch`` without storage (its structure and names only)."""
    dims = 3 if isinstance(supernet.stem[0][0], nn.Conv3d) else 2
    with torch.device("meta"):
        return MedNNSResNet(arch, supernet.stem[0][0].in_channels,
                            supernet.classifier.out_features, dims=dims)


def _prefixes(arch: mednns.Arch) -> dict[str, str]:
    """Module prefix in the standalone network of ``arch`` -> prefix in the supernet."""
    out = {"stem.0.": "stem.0.", "classifier.": "classifier."}
    out[f"stem.{1 + arch.stem}."] = "stem.2."
    if arch.stem:
        out["stem.1."] = "stem.1."
    k, offset = 0, 0
    for depth, base in zip(arch.depths, mednns.BASE_DEPTH):
        for j in range(depth):
            out[f"blocks.{k}."] = f"blocks.{offset + j}."
            k += 1
        offset += base + max(mednns.EXTRA_DEPTH)
    return out


def subnet_parameters(supernet: MedNNSResNet, arch: mednns.Arch,
                      skeleton: MedNNSResNet | None = None) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``arch``'s standalone network, as a view of the supernet.

    A tensor of shape ``(a, b, ...)`` is the supernet tensor's leading ``[:a, :b, ...]``
    slice (kernels are never cropped: every kernel is 3); scalars (batch norm's batch
    counter) are the supernet's own.
    """
    sub = skeleton if skeleton is not None else _skeleton(arch, supernet)
    prefixes = _prefixes(arch)
    big = dict(supernet.named_parameters())
    big.update(supernet.named_buffers())
    out = {}
    for name, t in [*sub.named_parameters(), *sub.named_buffers()]:
        prefix = next(p for p in prefixes if name.startswith(p))
        source = big[prefixes[prefix] + name[len(prefix):]]
        out[name] = source[tuple(slice(0, n) for n in t.shape)] if t.dim() else source
    return out


def forward(supernet: MedNNSResNet, arch: mednns.Arch, x: torch.Tensor) -> torch.Tensor:
    """``arch``'s output on ``x`` computed with the supernet's shared weights.

    In training mode gradients reach the supernet's slices and batch norm updates their
    running statistics, as a standalone network of ``arch`` would its own.
    """
    skeleton = _skeleton(arch, supernet)
    skeleton.train(supernet.training)
    return torch.func.functional_call(skeleton, subnet_parameters(supernet, arch, skeleton),
                                      (x,))


def extract(supernet: MedNNSResNet, arch: mednns.Arch) -> MedNNSResNet:
    """A standalone network of ``arch`` holding copies of its supernet weights and statistics."""
    # built without storage, then given uninitialised storage: every tensor is copied over
    net = _skeleton(arch, supernet).to_empty(device=supernet.classifier.weight.device)
    with torch.no_grad():
        views = subnet_parameters(supernet, arch)
        for name, t in [*net.named_parameters(), *net.named_buffers()]:
            t.copy_(views[name])
    return net.train(supernet.training)


@torch.no_grad()
def recalibrate(net: nn.Module, images: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Re-estimate every batch norm's running mean and variance on ``images``.

    The statistics are reset and accumulated as exact averages over the batches (momentum
    None), in training-mode forward passes without gradients, as OFA's
    ``set_running_statistics`` does; the network is returned in eval mode.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    device = next(net.parameters()).device
    for i in range(0, len(images), batch_size):
        net(images[i:i + batch_size].to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return net.eval()
