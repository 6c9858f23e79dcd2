"""The margin ranking loss of Llama 2 (sec. 3.2.2, eq. 2)."""

import torch
import torch.nn.functional as F


def margin_ranking_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """mean of -log(sigmoid(r_chosen - r_rejected - m)).

    The margin asks for a larger score gap on pairs the annotators found clearly different;
    logsigmoid is the numerically stable form of log(sigmoid(x)).
    """
    return -F.logsigmoid(chosen - rejected - margin).mean()
