import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.isolation import TEST_REDIS_URL
from tests.real_services import redis_server, start_worker  # noqa: F401  (one of each, suite-wide)

# tests/isolation.py (a plugin pytest.ini loads first) chose the suite's own Redis; a shell's
# REDIS_URL or a settings module read earlier must not have won.
assert settings.REDIS_URL == TEST_REDIS_URL == settings.CELERY_BROKER_URL, "the suite's Redis is not its own"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API in tests

REPO = Path(__file__).resolve().parents[1]
TEST_CACHE = REPO / "var" / "test-cache"


@pytest.fixture(scope="session")
def tiny_model_path():
    """A tiny random Llama with the real SmolLM2 tokenizer, saved as a store checkpoint."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(TEST_CACHE / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_reward_model_path(tiny_model_path):
    """The tiny model with a random scalar head, as a reward-model checkpoint."""
    from tests.tiny_model import build_tiny_reward_model

    return build_tiny_reward_model(TEST_CACHE / "tiny-rm", tiny_model_path)


@pytest.fixture
def tiny_policy(db, tiny_model_path):
    """The tiny model registered as the only active policy version."""
    from rlhf.models import PolicyVersion

    return PolicyVersion.objects.create(name="tiny", checkpoint_path=str(tiny_model_path))


@pytest.fixture
def policy_world(tiny_policy, tiny_reward_model_path):
    """A tiny policy, two tiny reward models (tiny-helpful, tiny-safety), a helpfulness and a
    safety project with prompts: what the policy jobs and the OpenRLHF hand-off start from."""
    from rewardmodel.models import RewardModel
    from tests.factories import DialogueFactory, ProjectFactory, SafetyProjectFactory

    for name, objective in (("tiny-helpful", "helpfulness"), ("tiny-safety", "safety")):
        RewardModel.objects.create(name=name, objective=objective, base_model="tiny",
                                   checkpoint_path=str(tiny_reward_model_path))
    helpful, safety = ProjectFactory(name="helpful"), SafetyProjectFactory(name="safety")
    for n in range(12):
        DialogueFactory(project=helpful if n % 3 else safety)
    return tiny_policy
