"""Fixtures for the Django-free rlhf ML tests: the tiny Llama checkpoint, loaded for generation."""

from pathlib import Path

import pytest

from modelruntime.modelstore import load_policy
from tests.tiny_model import build_tiny_model

TEST_CACHE = Path(__file__).resolve().parents[2] / "var" / "test-cache"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    return build_tiny_model(TEST_CACHE / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    """(model, tokenizer) shared by the whole session; tests must not train it."""
    return load_policy(tiny_model_dir)
