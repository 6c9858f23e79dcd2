"""Generation backends without a model server: the local engine through the one interface, and the
OpenAI-compatible client's retries, timeouts, in-flight cap and error messages against a small
HTTP server that plays a server's error replies (429, 503, slow, 404). Real generation through a
real vLLM server is tests/integration/test_vllm_generation.py's."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlhf.backends import GenerationUnavailable, LocalBackend, OpenAIBackend, vllm_serve_command
from rlhf.generation import SamplingConfig
from tests.integration.vllm_server import free_port

PROMPTS = [[{"role": "user", "content": f"Question {n}?"}] for n in range(6)]
SAMPLING = SamplingConfig(temperature=1.0, max_new_tokens=6, seed=3)


class ScriptedServer:
    """Answers /v1/chat/completions: the first `failures` requests get `status`, later ones a
    completion with n choices (after `delay` seconds); records requests and peak concurrency."""

    def __init__(self, failures=0, status=503, delay=0.0, retry_after=None, models=("served",)):
        self.failures, self.status, self.delay, self.retry_after, self.models = failures, status, delay, retry_after, models
        self.requests, self.open, self.peak, self.lock = [], 0, 0, threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload, headers=()):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, {"data": [{"id": name} for name in server.models]})

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"body": request, "auth": self.headers.get("Authorization")})
                    number = len(server.requests)
                    server.open += 1
                    server.peak = max(server.peak, server.open)
                try:
                    if request["model"] not in server.models:
                        return self._send(404, {"error": {"message": f"The model `{request['model']}` does not exist."}})
                    if number <= server.failures:
                        headers = [("Retry-After", str(server.retry_after))] if server.retry_after is not None else []
                        return self._send(server.status, {"error": {"message": "busy"}}, headers)
                    time.sleep(server.delay)
                    choices = [{"index": i, "message": {"role": "assistant", "content": f" answer {i} "},
                                "finish_reason": "stop",
                                "logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.0}]}}
                               for i in range(request.get("n", 1))]
                    self._send(200, {"choices": choices, "usage": {"completion_tokens": 2 * len(choices)}})
                finally:
                    with server.lock:
                        server.open -= 1

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def scripted():
    servers = []

    def start(**kwargs):
        servers.append(ScriptedServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def backend(server, **kwargs):
    return OpenAIBackend(base_url=server.base_url, served_model="served", backoff_seconds=0.01, **kwargs)


def test_local_backend_gives_k_responses_per_prompt_with_token_counts_and_logprobs(tiny_lm):
    model, tokenizer = tiny_lm
    local = LocalBackend(model=model, tokenizer=tokenizer)

    out = local.generate(PROMPTS[:2], SAMPLING, k=3, logprobs=True)

    assert [len(per_prompt) for per_prompt in out] == [3, 3]
    for generation in out[0] + out[1]:
        assert 1 <= generation.tokens <= 6 and len(generation.logprobs) == generation.tokens
    again = local.generate(PROMPTS[:2], SAMPLING, k=3)
    assert [[g.text for g in p] for p in again] == [[g.text for g in p] for p in out]  # same seed, same texts


def test_k_samples_of_a_prompt_are_one_request_with_n_and_the_sampling_settings(scripted):
    server = scripted()

    out = backend(server).generate(PROMPTS[:2], SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=7, seed=11),
                                   k=4, logprobs=True)

    assert [[g.text for g in per_prompt] for per_prompt in out] == [[f"answer {i}" for i in range(4)]] * 2
    assert out[0][0].logprobs == [-0.5, -1.0] and out[0][0].tokens == 2 and out[0][0].finished
    assert len(server.requests) == 2
    body = server.requests[0]["body"]
    assert {key: body[key] for key in ("model", "n", "temperature", "top_p", "max_tokens", "seed", "logprobs")} == {
        "model": "served", "n": 4, "temperature": 0.8, "top_p": 0.95, "max_tokens": 7, "seed": 11, "logprobs": True}
    assert body["messages"] in PROMPTS[:2]


@pytest.mark.parametrize("status", [429, 503, 500])
def test_busy_or_failing_server_is_retried_with_backoff(scripted, status):
    server = scripted(failures=2, status=status, retry_after=0)

    out = backend(server, retries=2, max_in_flight=1).generate(PROMPTS[:1], SAMPLING)

    assert out[0][0].text == "answer 0" and len(server.requests) == 3


def test_a_server_that_keeps_failing_gives_a_clear_error_after_the_retries(scripted):
    server = scripted(failures=99, status=503)

    with pytest.raises(GenerationUnavailable, match=r"'served' served at .* is unavailable: HTTP 503: busy \(3 tries\)"):
        backend(server, retries=2).generate(PROMPTS[:1], SAMPLING)


def test_a_server_that_is_down_is_named_with_the_cause():
    down = OpenAIBackend(base_url=f"http://127.0.0.1:{free_port()}/v1", served_model="m", retries=1, backoff_seconds=0.01)

    with pytest.raises(GenerationUnavailable, match=r"is unavailable: cannot connect \(ConnectError.*\(2 tries\)"):
        down.generate(PROMPTS[:1], SAMPLING)


def test_a_slow_server_times_out_with_a_clear_error(scripted):
    server = scripted(delay=2.0)

    started = time.monotonic()
    with pytest.raises(GenerationUnavailable, match=r"no answer within 0.3 s \(2 tries\)"):
        backend(server, timeout_seconds=0.3, retries=1).generate(PROMPTS[:1], SAMPLING)
    assert time.monotonic() - started < 1.9


def test_a_model_the_server_does_not_serve_is_named_with_what_it_serves(scripted):
    server = scripted(models=("smollm2", "other"))

    with pytest.raises(GenerationUnavailable, match=r"does not serve a model named 'served' \(it serves: smollm2, other\)"):
        backend(server).generate(PROMPTS[:1], SAMPLING)
    assert len(server.requests) == 1  # not retried


def test_requests_in_flight_never_exceed_the_cap(scripted):
    server = scripted(delay=0.2)

    backend(server, max_in_flight=3).generate(PROMPTS, SAMPLING)

    assert len(server.requests) == 6 and server.peak == 3


def test_the_api_key_comes_from_the_named_environment_variable(scripted, monkeypatch):
    server = scripted()
    keyed = backend(server, api_key_env="MARGIN_TEST_GEN_KEY")
    monkeypatch.delenv("MARGIN_TEST_GEN_KEY", raising=False)

    with pytest.raises(GenerationUnavailable, match="MARGIN_TEST_GEN_KEY .* is not set"):
        keyed.generate(PROMPTS[:1], SAMPLING)
    monkeypatch.setenv("MARGIN_TEST_GEN_KEY", "sk-secret")
    keyed.generate(PROMPTS[:1], SAMPLING)

    assert server.requests[-1]["auth"] == "Bearer sk-secret"


def test_an_api_key_given_where_its_variable_name_belongs_is_refused():
    with pytest.raises(ValueError, match="api_key_env must be an environment variable's name"):
        OpenAIBackend(base_url="http://x/v1", served_model="m", api_key_env="sk-abc123")


def test_vllm_serve_command_for_a_full_checkpoint_and_a_lora_adapter():
    assert vllm_serve_command(name="RLHF-V1", checkpoint="/store/policies/RLHF-V1/policy", port=8001) == [
        "vllm", "serve", "/store/policies/RLHF-V1/policy", "--served-model-name", "RLHF-V1",
        "--host", "0.0.0.0", "--port", "8001", "--dtype", "auto"]
    assert vllm_serve_command(name="V2", checkpoint="/a/V2", base="/base/sft", lora_rank=16)[-5:] == [
        "--enable-lora", "--lora-modules", "V2=/a/V2", "--max-lora-rank", "16"]
