import math

import torch

from latentloop.models.losses import IGNORE_LABEL, act_loss, log_stablemax, softmax_cross_entropy, stablemax_cross_entropy


def test_stablemax_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    s = [3.0, 0.5, 1.0]                     # x+1 for x>=0, 1/(1-x) for x<0
    expected = [math.log(v / sum(s)) for v in s]
    assert torch.allclose(log_stablemax(logits).double(), torch.tensor([expected], dtype=torch.float64))
    loss = stablemax_cross_entropy(logits.unsqueeze(0), torch.tensor([[1]]))
    assert loss.dtype == torch.float64
    assert abs(loss.item() + math.log(0.5 / 4.5)) < 1e-12


def test_ignored_labels_cost_nothing():
    logits = torch.randn(1, 3, 4)
    labels = torch.tensor([[1, IGNORE_LABEL, 2]])
    for fn in (stablemax_cross_entropy, softmax_cross_entropy):
        assert fn(logits, labels)[0, 1] == 0


def test_act_loss_per_sequence_mean_halt_bce_and_metrics():
    # Two sequences, 2 tokens each (one ignored in the second), vocabulary 2.
    logits = torch.tensor([[[3.0, 0.0], [0.0, 3.0]], [[0.0, 3.0], [1.0, 0.0]]])
    labels = torch.tensor([[0, 1], [0, IGNORE_LABEL]])
    q_halt = torch.tensor([1.0, -2.0])
    outputs = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": torch.zeros(2)}
    halted = torch.tensor([True, True])
    steps = torch.tensor([2, 3])
    total, m = act_loss(outputs, labels, halted, steps, softmax_cross_entropy)
    ce = lambda row, k: -torch.log_softmax(row, -1)[k].item()
    lm = (ce(logits[0, 0], 0) + ce(logits[0, 1], 1)) / 2 + ce(logits[1, 0], 0) / 1
    # Sequence 0 is all correct (target 1), sequence 1 is wrong (target 0).
    bce = -math.log(torch.sigmoid(torch.tensor(1.0)).item()) - math.log(1 - torch.sigmoid(torch.tensor(-2.0)).item())
    assert abs(m["lm_loss"].item() - lm) < 1e-5
    assert abs(total.item() - (lm + 0.5 * bce)) < 1e-5
    assert m["count"] == 2 and m["exact_accuracy"] == 1 and m["q_halt_accuracy"] == 2 and m["steps"] == 5
    assert abs(m["accuracy"].item() - 1.0) < 1e-6   # seq 0: 2/2, seq 1: 0/1


def test_metrics_only_count_halted_rows_but_loss_counts_all():
    logits = torch.zeros(2, 3, 4)
    labels = torch.ones(2, 3, dtype=torch.long)
    outputs = {"logits": logits, "q_halt_logits": torch.zeros(2), "q_continue_logits": torch.zeros(2)}
    total_both, _ = act_loss(outputs, labels, torch.tensor([True, True]), torch.ones(2))
    total_one, m = act_loss(outputs, labels, torch.tensor([True, False]), torch.ones(2))
    assert m["count"] == 1
    assert torch.allclose(total_both, total_one)


def test_q_continue_loss_is_added_with_weight_half():
    outputs = {"logits": torch.zeros(1, 1, 2), "q_halt_logits": torch.zeros(1), "q_continue_logits": torch.zeros(1),
               "target_q_continue": torch.tensor([1.0])}
    labels = torch.zeros(1, 1, dtype=torch.long)
    total, m = act_loss(outputs, labels, torch.tensor([True]), torch.ones(1))
    assert abs(m["q_continue_loss"].item() - math.log(2)) < 1e-6
    assert abs(total.item() - (m["lm_loss"] + 0.5 * (m["q_halt_loss"] + m["q_continue_loss"])).item()) < 1e-6
