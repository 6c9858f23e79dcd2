"""Reward-hacking alarms for PPO and rejection sampling (issue 21). No Django here.

A policy optimised against a reward model can learn what the RM rewards rather than what people
prefer: longer and longer answers, drift far from the initial policy, or scores a second,
held-out reward model (the judge, never optimised against) does not share (DeepSpeed-Chat
#489, #297: reward collapse and gibberish with no alarm). `alarms_check` reads the run's
per-iteration records and names every alarm that is on; the job function logs them, keeps them
in the job's metrics, and stops the run when the config says so.

Records are dicts with `reward` (mean optimised score), `kl` (nats per sequence to the initial
policy; None where the run has no KL, as rejection sampling), `length` (mean response length) and,
when a judge is configured, `judge` (its mean score of the same responses). Beside them the run
records each reward model's own score (`reward/helpfulness_rm`, `reward/safety_rm`): the combined
reward can rise while one of them falls.

Rejection sampling records per prompt batch the mean best-of-K reward, the kept samples' length,
the judge's and each RM's score of them (`best_of_k_records`); its alarms compare the run's
summary with the earliest rejection-sampling version of its lineage, since a best-of-K run does
not move the policy while it samples: hacking shows up from one RLHF-Vn to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelruntime.config import ConfigBase, config_field


@dataclass
class RewardHackingAlarmConfig(ConfigBase):
    # No paper gives these bounds; they are conservative starting points a user tunes.
    alarm_length_ratio: float = config_field(
        1.5, "Alarm when the reward rose while mean response length grew past this multiple of the first "
             "iteration's (0: off).", ge=0)
    # Llama 2 keeps the policy near pi_0 with beta 0.01; a sequence KL of tens of nats means the
    # policy left the region where the reward model was trained.
    alarm_kl_bound: float = config_field(
        20.0, "Alarm when the mean sequence KL to the initial policy passes this many nats (0: off).", ge=0)
    alarm_judge_divergence: float = config_field(
        1.0, "Alarm when the optimised reward gained this much more than the judge's score since the first "
             "iteration (score units; 0: off).", ge=0)
    alarm_judge_rm: str = config_field(
        "", "Held-out judge: a second reward model (name or checkpoint), scored but never optimised against.")
    alarm_action: str = config_field(
        "warn", "warn: log and record the alarm; stop: end the run at the first alarm.", choices=("warn", "stop"))


class RewardHackingStopped(RuntimeError):
    """The run was stopped by an alarm (alarm_action=stop); the message names it."""


def alarms_check(records: list[dict], config: RewardHackingAlarmConfig) -> list[dict]:
    """The alarms on after the last record: [{"alarm", "iteration", "message"}], empty if none.

    Each compares the last record with the first, so one noisy iteration early in a run does
    not trip an alarm that the trend does not support.
    """
    if len(records) < 2:
        return []
    first, last = records[0], records[-1]
    iteration = last.get("iteration", len(records))
    reward_gain = last["reward"] - first["reward"]
    alarms = []
    if config.alarm_length_ratio and reward_gain > 0 and first["length"] > 0:
        ratio = last["length"] / first["length"]
        if ratio > config.alarm_length_ratio:
            alarms.append({"alarm": "length", "iteration": iteration, "message": (
                f"reward rose by {reward_gain:.3g} while mean response length grew {ratio:.2f}x "
                f"({first['length']:.1f} -> {last['length']:.1f}), past {config.alarm_length_ratio:g}x")})
    if config.alarm_kl_bound and last.get("kl") is not None and last["kl"] > config.alarm_kl_bound:
        alarms.append({"alarm": "kl", "iteration": iteration, "message": (
            f"KL to the initial policy is {last['kl']:.3g} nats, past the bound {config.alarm_kl_bound:g}")})
    if config.alarm_judge_divergence and last.get("judge") is not None and first.get("judge") is not None:
        judge_gain = last["judge"] - first["judge"]
        if reward_gain - judge_gain > config.alarm_judge_divergence:
            alarms.append({"alarm": "judge", "iteration": iteration, "message": (
                f"the optimised reward gained {reward_gain:.3g} but the held-out judge {judge_gain:.3g}: "
                f"they diverge by more than {config.alarm_judge_divergence:g}")})
    return alarms


class JudgedReward:
    """A reward function that also scores each batch with the held-out judge and notes the
    responses' mean length, so every iteration's record can carry them. The policy is optimised
    against `reward_fn` only."""

    def __init__(self, reward_fn, judge=None, batch_size: int = 8, others: dict | None = None):
        self.reward_fn, self.judge, self.batch_size = reward_fn, judge, batch_size
        self.others = others or {}  # {"helpfulness_rm": scorer, ...}: each RM's own score, recorded
        self.last: dict = {}

    def __call__(self, conversations: list[list[dict]]) -> list[float]:
        scores = self.reward_fn(conversations)
        self.last = {"alarm/response_chars": _mean(len(c[-1]["content"]) for c in conversations),
                     **self.side_scores(conversations)}
        return scores

    def side_scores(self, conversations) -> dict:
        """The judge's and each RM's own mean score of the conversations."""
        scored = {}
        for name, scorer in [("judge", self.judge), *self.others.items()]:
            if scorer is not None:
                scored[f"reward/{name}"] = _mean(scorer.score(conversations, batch_size=self.batch_size))
        return scored


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


# Rejection sampling's records are per this many prompts: small enough that a few dozen prompts
# show a spread, large enough that one odd prompt does not make a record.
PROMPTS_PER_RECORD = 8


class BestOfKWatch(JudgedReward):
    """Rejection sampling's reward function, watched: on its first call with K samples of every
    prompt (the kept temperature's, rlhf/rejection_sampling.py samples it first) it hands
    `on_records` one record per prompt batch, of the kept (best) samples only."""

    def __init__(self, reward_fn, *, k: int, prompts: int, on_records, **kwargs):
        super().__init__(reward_fn, **kwargs)
        self.k, self.prompts, self.on_records, self.records = k, prompts, on_records, None

    def __call__(self, conversations: list[list[dict]]) -> list[float]:
        scores = self.reward_fn(conversations)
        if self.records is None and len(conversations) == self.k * self.prompts:
            self.records = best_of_k_records(conversations, scores, self.k, self.side_scores)
            self.on_records(self.records)
        return scores


def best_of_k_records(conversations, scores, k: int, side_scores) -> list[dict]:
    """Per batch of PROMPTS_PER_RECORD prompts: the mean best reward, the mean length (characters)
    of the kept samples, and the judge's and the RMs' own scores of them (`side_scores`)."""
    best = [max(range(i, i + k), key=lambda j: scores[j]) for i in range(0, len(conversations), k)]
    records = []
    for number, start in enumerate(range(0, len(best), PROMPTS_PER_RECORD), start=1):
        kept = best[start : start + PROMPTS_PER_RECORD]
        records.append({"batch": number, "prompts": len(kept), "reward": _mean(scores[j] for j in kept),
                        "length": _mean(len(conversations[j][-1]["content"]) for j in kept),
                        **side_scores([conversations[j] for j in kept])})
    return records


def best_of_k_summary(records: list[dict]) -> dict:
    """A run's records as one, weighted by prompts: what later runs of the lineage compare with."""
    total = sum(r["prompts"] for r in records)
    keys = {key for r in records for key in r if key not in ("batch", "prompts")}
    return {key: sum(r[key] * r["prompts"] for r in records) / total
            for key in sorted(keys) if all(r.get(key) is not None for r in records)}


def alarm_record(ppo_record: dict) -> dict:
    """The alarm view of one PPO iteration's log record (names from modelruntime/__init__.py;
    `reward/judge` from JudgedReward)."""
    return {"iteration": ppo_record.get("iteration"), "reward": ppo_record["reward/score"],
            "kl": ppo_record["kl/reference_k1"], "length": ppo_record["ppo/response_length"],
            "judge": ppo_record.get("reward/judge")}


def rejection_alarm_record(summary: dict, iteration) -> dict:
    """The alarm view of a rejection-sampling run's summary (best_of_k_summary); no KL."""
    return {"iteration": iteration, "reward": summary["reward"], "kl": None, "length": summary["length"],
            "judge": summary.get("reward/judge")}
