"""Model runtime both ML apps use: checkpoints, model store, optimiser, config base. No Django.

Rooms: checkpoint.py (the one atomic writer and reader), modelstore.py (checkpoints web and
workers share), optim.py (AdamW with decay groups, the cosine schedule, LoRA), prefixcache.py
(prompt KV of frozen models), allocator.py (glibc setting for training processes), config.py
(the validated config base). rewardmodel/ and rlhf/ import from here; nothing here imports them.
This module imports nothing, so the web process may import modelruntime.config without torch.

Metric names, one scheme for every training loop (RM, SFT, PPO), as TRL and CleanRL namespace theirs:
    loss/<term>          every optimised loss term, mean over the step:
                         loss/rm (margin ranking loss), loss/sft (next-token loss on response
                         tokens), loss/policy (PPO's clipped surrogate), loss/value (PPO's value loss)
    reward/<what>        what the reward gave the samples: reward/score (PPO: the reward
                         function's mean score of the rollouts, before whitening and KL penalty)
    kl/<against>_<estimator>
                         a KL divergence, named by what it is measured against and its estimator
                         from Schulman, "Approximating KL Divergence" (2020), with r = pi_0 / pi:
                         k1 = -log r, k2 = (log r)^2 / 2, k3 = (r - 1) - log r.
                         kl/reference_k1: to the initial policy, nats per sequence (the penalty's KL);
                         kl/rollout_k2: between the sampling policy and the updated one, per token
    <algorithm>/<name>   a diagnostic of one algorithm only: rm/accuracy, ppo/clipfrac,
                         ppo/entropy, ppo/response_length
    no slash             bookkeeping: step, iteration, tokens, train_seconds
"""
