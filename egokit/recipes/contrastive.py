"""The contrastive loss both stages of the micro-CLIP recipe train with."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_contrastive(logits: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE whose targets spread evenly over every true pair (rows: images, cols: texts)."""
    m = match.float()
    i2t = -(F.log_softmax(logits, dim=1) * (m / m.sum(1, keepdim=True))).sum(1).mean()
    t2i = -(F.log_softmax(logits, dim=0) * (m / m.sum(0, keepdim=True))).sum(0).mean()
    return 0.5 * (i2t + t2i)


__all__ = ["soft_contrastive"]
