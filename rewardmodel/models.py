"""Reward models: pairs from judgments, margin loss, training, evaluation (issue 3)."""
