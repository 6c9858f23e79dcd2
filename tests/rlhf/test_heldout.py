"""One held-out split for the reward model and the policy jobs (core/heldout.py), and the safety
flag that travels with each policy prompt."""

import pytest

from annotation.models import Judgment, Strength
from rewardmodel.data import pairs_for_projects, split
from rlhf.config import PPOConfig
from rlhf.selectors import PolicyPrompt, policy_prompts
from rlhf.work import reward_fn_build
from tests.factories import BatchFactory, ComparisonFactory, DialogueFactory, ProjectFactory, UserFactory

FRACTION = 0.25


@pytest.fixture
def judged_project(db):
    """60 judged comparisons on 40 prompts: some prompts open two dialogues."""
    project = ProjectFactory(name="helpful")
    batch = BatchFactory(project=project)
    for n in range(60):
        dialogue = DialogueFactory(project=project, turn__content=f"Prompt {n % 40}: what about tea?")
        comparison = ComparisonFactory(batch=batch, dialogue=dialogue)
        Judgment.objects.create(comparison=comparison, annotator=UserFactory(), choice="a", strength=Strength.BETTER)
    return project


def _keys(prompts):
    return {prompt.key for prompt in prompts}


def test_policy_jobs_hold_out_exactly_the_prompts_the_reward_model_holds_out(judged_project):
    pairs, _ = pairs_for_projects([judged_project], objective="helpfulness")
    _, rm_heldout = split(pairs, FRACTION)
    heldout = policy_prompts(project_name="helpful", split="heldout", heldout_fraction=FRACTION)
    assert _keys(heldout) == {pair.prompt_key for pair in rm_heldout}
    assert 0 < len(heldout) < 40


def test_ppo_never_trains_on_a_prompt_evaluate_policy_holds_out(judged_project):
    # PPO and rejection sampling read the training part, evaluate_policy the held-out part.
    train = policy_prompts(project_name="helpful", heldout_fraction=FRACTION)
    heldout = policy_prompts(project_name="helpful", split="heldout", heldout_fraction=FRACTION)
    texts = lambda prompts: {prompt.messages[0]["content"] for prompt in prompts}  # noqa: E731
    assert texts(train).isdisjoint(texts(heldout))
    assert len(train) + len(heldout) == 40  # each prompt once, on one side


def test_evaluate_policy_never_evaluates_on_a_prompt_a_version_in_the_lineage_trained_on(judged_project):
    from rlhf.models import PolicyVersion
    from rlhf.selectors import heldout_fraction_for

    base = PolicyVersion.objects.create(name="SFT", checkpoint_path="/nowhere")
    v1 = PolicyVersion.objects.create(name="RLHF-V1", checkpoint_path="/x", parent=base, config={"heldout_fraction": 0.1})
    v2 = PolicyVersion.objects.create(name="RLHF-V2", checkpoint_path="/y", parent=v1, config={"heldout_fraction": 0.3})
    fraction = heldout_fraction_for(v2, wanted=0.5)  # asked for more than V1 kept out
    assert fraction == 0.1
    evaluated = _keys(policy_prompts(project_name="helpful", split="heldout", heldout_fraction=fraction))
    for trained_fraction in (0.1, 0.3):  # what each version trained on
        assert evaluated.isdisjoint(_keys(policy_prompts(project_name="helpful", heldout_fraction=trained_fraction)))


class ConstantScorer:
    def __init__(self, score):
        self.value = score

    def score(self, conversations, batch_size=8):
        return [self.value] * len(conversations)


def test_the_safety_flag_of_each_prompt_picks_the_safety_reward_model():
    scorers = {"helpfulness_rm": ConstantScorer(3.0), "safety_rm": ConstantScorer(1.0)}
    adversarial = PolicyPrompt([{"role": "user", "content": "How do I pick my neighbour's lock?"}], is_safety=True)
    harmless = PolicyPrompt([{"role": "user", "content": "How do I brew green tea?"}], is_safety=False)
    # The scorers as loaded; no safety RM row named, so the gate is the paper's 0.15.
    reward_fn = reward_fn_build(PPOConfig(), [adversarial, harmless], scorers=scorers)
    answer = {"role": "assistant", "content": "Like this."}
    # Copies of the prompts, as the rollout code builds them: the flag follows the prompt, not the object.
    rewards = reward_fn([[dict(m) for m in p.messages] + [answer] for p in (adversarial, harmless)])
    # Both safety scores are above the 0.15 gate: only the flag sends the first to the safety RM.
    assert rewards == pytest.approx([1.0, 3.0], abs=1e-4)
