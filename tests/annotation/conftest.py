import pytest


@pytest.fixture(autouse=True)
def _model_store(settings, tmp_path):
    """Each test its own model store, and short generations on the tiny model."""
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    settings.MARGIN_MAX_NEW_TOKENS = 8
