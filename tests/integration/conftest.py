"""The session's vLLM server for the tests marked `vllm` (tests/integration/vllm_server.py)."""

import pytest

from tests.integration.vllm_server import VLLM_PYTHON, VLLMServer


@pytest.fixture(scope="session")
def smollm2_dir():
    """The real SmolLM2-135M-Instruct converted into a cached model store, as `prepare_model` does."""
    from modelruntime.modelstore import default_model_dir
    from tests.conftest import TEST_CACHE

    return default_model_dir(TEST_CACHE / "store")


@pytest.fixture(scope="session")
def vllm_server(smollm2_dir, tmp_path_factory):
    if not VLLM_PYTHON.exists():
        pytest.skip(f"{VLLM_PYTHON} is missing: run scripts/install-vllm (scripts/test does) for the vLLM tests")
    server = VLLMServer(smollm2_dir, tmp_path_factory.mktemp("vllm") / "vllm.log").start()
    yield server
    server.stop()


@pytest.fixture
def served(vllm_server):
    """The session server, started again if an earlier test killed it."""
    return vllm_server.ensure()
