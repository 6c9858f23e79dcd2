"""An external RL trainer scores with Margin's reward models over HTTP: TRL's GRPOTrainer runs a
real step on the tiny policy with docs/serving.md's reward function posting to a real
`serve_rewards` process (issue 18, "Done when")."""

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.rlhf.test_reward_server import RewardServer

pytestmark = pytest.mark.slow


def docs_reward_function(url):
    """The TRL snippet of docs/serving.md, as written there, pointed at the test's server."""
    text = (Path(REPO) / "docs" / "serving.md").read_text()
    code = re.search(r"TRL \(a GRPO or RLOO reward function.*?```python\n(.*?)```", text, re.S).group(1)
    code = code.replace("http://RM_HOST:5000", url)
    return code


def test_trl_grpo_step_scores_through_serve_rewards(tmp_path, tiny_model_path, tiny_reward_model_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    server = RewardServer(tmp_path, "--reward-model", str(tiny_reward_model_path))
    try:
        code = docs_reward_function(server.url).replace("var/models/reward/helpful-v3", str(tiny_reward_model_path))
        namespace = {}
        exec(compile(code, "docs/serving.md", "exec"), namespace)  # noqa: S102 (our own documentation)
        rewards_seen = []

        def margin_reward(prompts, completions, **kwargs):
            rewards = namespace["margin_reward"](prompts, completions, **kwargs)
            rewards_seen.extend(rewards)
            return rewards

        prompts = [[{"role": "user", "content": q}] for q in ("Name a colour.", "Say hello.")]
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(tiny_model_path, local_files_only=True),
            processing_class=AutoTokenizer.from_pretrained(tiny_model_path, local_files_only=True),
            reward_funcs=margin_reward,
            train_dataset=Dataset.from_dict({"prompt": prompts}),
            args=GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=2, num_generations=2,
                            max_completion_length=8, max_steps=1, logging_steps=1, report_to=[], use_cpu=True,
                            save_strategy="no", bf16=False),
        )
        trainer.train()
        health = httpx.get(f"{server.url}/health").json()
    finally:
        server.stop()
    # Every completion TRL sampled was scored by the server, and the trainer logged those rewards.
    assert len(rewards_seen) == 2 and health["queries_scored"] == 2
    logged = [entry for entry in trainer.state.log_history if "reward" in entry][0]
    assert logged["reward"] == pytest.approx(sum(rewards_seen) / 2, abs=1e-4)
