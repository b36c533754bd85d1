"""builders.measure.metrics: segmentation metrics against a direct computation."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from monai.data import MetaTensor  # noqa: E402

from builders.measure.metrics import segmentation_metrics  # noqa: E402


class _Fixed:
    """A 'network' that returns the logits it was given, case by case."""

    def __init__(self, logits):
        self.logits, self.i = logits, 0

    def eval(self):
        return self

    def __call__(self, x):
        out = self.logits[self.i:self.i + len(x)]
        self.i += len(x)
        return out


def _dice(pred, truth, c):
    a, b = pred == c, truth == c
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_segmentation_metrics_labels_are_the_first_maximum_and_dice_is_exact():
    rng = np.random.default_rng(0)
    n, shape = 3, (6, 7, 5)
    # integer logits: many ties, which the first maximum (argmax's rule) must break
    logits = torch.from_numpy(rng.integers(0, 3, size=(n, 3, *shape)).astype(np.float32))
    labels = rng.integers(0, 3, size=(n, 1, *shape))
    batches = [{"image": MetaTensor(torch.zeros(2, 1, *shape)),
                "label": MetaTensor(torch.from_numpy(labels[:2]))},
               {"image": MetaTensor(torch.zeros(1, 1, *shape)),
                "label": MetaTensor(torch.from_numpy(labels[2:]))}]
    got = segmentation_metrics(_Fixed(logits), batches, 3, "cpu", shape)
    pred = logits.numpy().argmax(1)
    want = [np.mean([_dice(pred[i], labels[i, 0], c) for i in range(n)]) for c in (1, 2)]
    assert got["dice_per_class"] == pytest.approx(want, rel=1e-6)
    assert got["dice"] == pytest.approx(np.mean(want), rel=1e-6)
    assert 0 < got["jaccard"] < got["dice"] < 1
    # a perfect prediction: Dice 1 and HD95 0
    perfect = torch.from_numpy(np.eye(3, dtype=np.float32)[labels[:, 0]]).movedim(-1, 1)
    best = segmentation_metrics(_Fixed(perfect), batches, 3, "cpu", shape)
    assert best["dice"] == pytest.approx(1.0) and best["hd95_mm"] == pytest.approx(0.0)
