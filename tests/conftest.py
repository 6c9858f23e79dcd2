import os
import socket
from pathlib import Path

import pytest


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The suite's own Redis (tests/integration starts it): set before Django reads its settings.
os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_free_port()}/0"

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
