"""``vqladder.planning.value``: moves-to-go targets."""

import numpy as np
import torch

from vqladder.planning.maze import (
    END,
)

U, D, L, R = 0, 1, 2, 3


def test_value_targets_are_moves_to_go_and_zero_for_failures():
    from vqladder.planning.value import value_targets

    moves = np.array([[0, 1, 1, END, END], [2, 3, 2, 3, 2], [0, END, END, END, END]])
    to_go = value_targets(moves, np.array([True, True, False]), END)
    assert to_go.tolist() == [[3, 2, 1, 0, 0, 0], [5, 4, 3, 2, 1, 0], [-1] * 6]
    from vqladder.planning.value import PlanValue, ValueConfig

    v = PlanValue(ValueConfig(move_vocab=5, cond_vocab=4, cond_len=2, max_moves=5, gamma=0.5, d_model=16, n_heads=2,
                              n_layers=1))
    assert v.target(torch.from_numpy(to_go)).tolist()[0] == [0.125, 0.25, 0.5, 1.0, 1.0, 1.0]
    assert v.target(torch.from_numpy(to_go))[2].abs().sum() == 0

