"""Staff dashboard: progress, annotator quality, agreement, review, policy leaderboard, model
plots and jobs. Staff only; thin views over annotation, rewardmodel and rlhf services."""
