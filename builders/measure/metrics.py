"""Quality of a trained network: segmentation metrics on MSD volumes, classification
metrics on MedMNIST images (torch, MONAI and medmnist imported where used)."""

from __future__ import annotations

__all__ = ["segmentation_metrics", "EVAL_BATCH", "class_scores", "classification_metrics"]


def segmentation_metrics(net, loader, n_classes: int, device, spatial: tuple[int, ...],
             full: bool = True, layout=None) -> dict:
    """Dice, Jaccard and HD95 per foreground class, averaged over cases, and their mean
    (Dice only unless ``full``: the per-epoch validation of the learning curve); inputs in
    memory ``layout`` (a ``torch.memory_format``) when given."""
    import math

    import torch
    from monai.metrics import compute_hausdorff_distance, compute_iou, compute_dice
    from monai.networks.utils import one_hot

    diagonal = math.sqrt(sum(s * s for s in spatial))
    dice, iou, hd = [], [], []
    net.eval()
    with torch.no_grad():
        for batch in loader:
            # plain tensors: MONAI's MetaTensor would carry its metadata through every op
            x, y = (batch[k].as_subclass(torch.Tensor).to(device) for k in ("image", "label"))
            if layout is not None:
                x = x.contiguous(memory_format=layout)
            # torch.max's indices are argmax's (the first maximum), and faster on a CPU
            pred = one_hot(torch.max(net(x), 1, keepdim=True).indices, n_classes)
            truth = one_hot(y.long(), n_classes)
            dice.append(compute_dice(pred, truth, include_background=False, ignore_empty=False))
            if not full:
                continue
            iou.append(compute_iou(pred, truth, include_background=False, ignore_empty=False))
            h = compute_hausdorff_distance(pred, truth, include_background=False, percentile=95)
            hd.append(torch.nan_to_num(h, nan=diagonal, posinf=diagonal))
    mean = lambda v: torch.cat(v).double().nan_to_num(0.0).mean(0).tolist()  # noqa: E731
    d = mean(dice)
    if not full:
        return {"dice": sum(d) / len(d)}
    j, h = mean(iou), mean(hd)
    return {"dice": sum(d) / len(d), "jaccard": sum(j) / len(j), "hd95_mm": sum(h) / len(h),
            "dice_per_class": d, "jaccard_per_class": j, "hd95_mm_per_class": h}


#: Images per evaluation forward pass. Eval-mode outputs do not depend on it (checked bit for
#: bit); on one CPU thread 64 ran a PneumoniaMNIST subnet's val + test passes 1.49x faster
#: than 512 (benchmarks/subnet_eval_speed.py, side by side).
EVAL_BATCH = 64


def class_scores(net, x, batch: int, device):
    """Logits of ``net`` in eval mode on ``x``, ``batch`` images per forward pass."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(net(x[i:i + batch].to(device)).float().cpu())
    return torch.cat(out)


def classification_metrics(task, logits, part: str) -> dict[str, float]:
    """Accuracy and AUC with medmnist's own functions, on probabilities."""
    import torch
    from medmnist.evaluator import getACC, getAUC

    probs = torch.sigmoid(logits) if task.multi_label else torch.softmax(logits, dim=1)
    y_true = task.arrays[f"{part}_labels"]
    kind = task.info["task"]
    return {"acc": float(getACC(y_true, probs.numpy(), kind)),
            "auc": float(getAUC(y_true, probs.numpy(), kind))}
