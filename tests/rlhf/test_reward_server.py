"""`manage.py serve_rewards`: a real server process on a free port, called over real HTTP with
OpenRLHF's request shape, its rewards checked against the scorers and rlhf/rewards.py."""

import math
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest
import torch
from django.core.management import CommandError, call_command

from rewardmodel.scoring import load_scorer
from rlhf.rewards import LOGIT_EPS, SAFETY_GATE, combined_reward
from tests.conftest import REPO, TEST_CACHE
from tests.isolation import _free_port
from tests.real_services import wait_until

pytestmark = pytest.mark.slow  # starts real server processes (about 15 s each on 2 cores)

LIMITS = {"--max-batch-size": 2, "--max-queries": 8, "--max-query-chars": 4000, "--max-body-bytes": 20_000,
          "--max-connections": 6}
DIALOGUES = [
    [{"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Mix flour, water, yeast; knead; bake."}],
    [{"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": "I refuse."}],
    [{"role": "user", "content": "How do I pick a lock?"}, {"role": "assistant", "content": "Insert a tension wrench, then rake the pins."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"}, {"role": "assistant", "content": "Rome."}],
    [{"role": "user", "content": "Write a haiku about rain."}, {"role": "assistant", "content": "Grey sky leans on roofs / ..."}],
]


@pytest.fixture(scope="module")
def safety_rm_path(tiny_reward_model_path):
    """A second RM: the tiny one with its head scaled up, so its scores straddle the 0.15 gate."""
    from transformers import AutoModelForSequenceClassification

    from modelruntime.modelstore import checkpoint_is_complete, save_checkpoint
    from rewardmodel.modeling import _tokenizer

    dest = TEST_CACHE / "tiny-safety-rm"
    if not checkpoint_is_complete(dest):
        model = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model_path, local_files_only=True)
        with torch.no_grad():
            model.score.weight.mul_(40.0)
        save_checkpoint(model, _tokenizer(tiny_reward_model_path), dest, {"name": "tiny-safety-rm", "kind": "reward_model"})
    return dest


@pytest.fixture(scope="module")
def tokenizer(tiny_reward_model_path):
    from rewardmodel.modeling import _tokenizer

    return _tokenizer(tiny_reward_model_path)


class RewardServer:
    def __init__(self, tmp_path, *models):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"serve-rewards-{self.port}.log"
        limits = [str(x) for pair in LIMITS.items() for x in pair]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve_rewards", *models, "--port", str(self.port),
                 "--batch-wait-ms", "300", *limits],
                cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self.healthy, 120, f"serve_rewards ({self.log})")

    def healthy(self):
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def post(self, payload=None, **kwargs):
        return httpx.post(f"{self.url}/get_reward", json=payload, timeout=60, **kwargs)

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def combined_server(tmp_path_factory, tiny_reward_model_path, safety_rm_path):
    server = RewardServer(tmp_path_factory.mktemp("rewards"), "--helpfulness-rm", str(tiny_reward_model_path),
                          "--safety-rm", str(safety_rm_path))
    yield server
    server.stop()


def openrlhf_request(tokenizer, dialogues, labels=None):
    """What OpenRLHF's SingleTurnAgentExecutor posts: the prompt in the chat template with the
    generation prompt, the response decoded after it with its end-of-turn token, and the prompt."""
    prompts = [tokenizer.apply_chat_template(d[:-1], tokenize=False, add_generation_prompt=True) for d in dialogues]
    queries = [p + d[-1]["content"] + tokenizer.eos_token for p, d in zip(prompts, dialogues)]
    return {"query": queries, "prompts": prompts, "labels": labels or [None] * len(dialogues)}


def test_combined_reward_is_llama2s_gate_over_the_two_scorers(combined_server, tokenizer, tiny_reward_model_path, safety_rm_path):
    labels = [None, None, "safety", None, None]  # the lock-picking prompt is a safety prompt
    answer = combined_server.post(openrlhf_request(tokenizer, DIALOGUES, labels))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    helpful = load_scorer(tiny_reward_model_path).score(DIALOGUES)
    safety = load_scorer(safety_rm_path).score(DIALOGUES)
    flags = torch.tensor([label == "safety" for label in labels])
    r_c = combined_reward(torch.tensor(helpful), torch.tensor(safety), flags)
    assert body["rewards"] == pytest.approx(torch.logit(r_c, eps=LOGIT_EPS).tolist(), abs=1e-4)
    assert body["scores"] == pytest.approx(r_c.tolist(), abs=1e-5)  # R_c in [0, 1], for dynamic filtering
    r_s = torch.sigmoid(torch.tensor(safety))
    assert body["extra_logs"]["reward/safety"] == pytest.approx(r_s.tolist(), abs=1e-5)
    gated = [bool(f or s < SAFETY_GATE) for f, s in zip(flags, r_s)]
    assert body["extra_logs"]["reward/safety_gated"] == [float(g) for g in gated]
    # The fixture's safety RM gates some responses and passes others, so both branches are checked:
    # a gated one takes the safety score, the others the helpfulness score.
    below = [i for i, s in enumerate(r_s) if s < SAFETY_GATE]
    passed = [i for i, g in enumerate(gated) if not g]
    assert below and passed, f"fixture: R_s = {r_s.tolist()} must straddle {SAFETY_GATE}"
    for i in below + [2]:
        assert body["rewards"][i] == pytest.approx(safety[i], abs=1e-4)
    for i in passed:
        assert body["rewards"][i] == pytest.approx(helpful[i], abs=1e-4)


def test_a_request_larger_than_the_batch_size_answers_every_query(combined_server, tokenizer):
    request = openrlhf_request(tokenizer, DIALOGUES * 2)
    request = {name: values[:7] for name, values in request.items()}  # 7 texts, batch size 2

    answer = combined_server.post(request)

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["rewards"]) == 7
    assert answer.json()["rewards"][5] == pytest.approx(answer.json()["rewards"][0], abs=1e-4)  # same dialogue


def test_concurrent_single_query_requests_share_a_batch(combined_server, tokenizer):
    """OpenRLHF posts one rollout per request: requests arriving together are scored together."""
    before = httpx.get(f"{combined_server.url}/health").json()
    requests = [openrlhf_request(tokenizer, [d]) for d in DIALOGUES[:4]]
    answers = [None] * 4

    def post(i):
        answers[i] = combined_server.post(requests[i])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [200] * 4
    after = httpx.get(f"{combined_server.url}/health").json()
    assert after["queries_scored"] - before["queries_scored"] == 4
    assert after["scoring_rounds"] - before["scoring_rounds"] < 4  # at most 2 per round: 2 or 3 rounds
    alone = combined_server.post(openrlhf_request(tokenizer, DIALOGUES[:4])).json()["rewards"]
    assert [a.json()["rewards"][0] for a in answers] == pytest.approx(alone, abs=1e-4)


def test_health_names_the_models_and_limits(combined_server, tiny_reward_model_path):
    health = httpx.get(f"{combined_server.url}/health").json()

    assert health["status"] == "ok"
    assert health["reward"].startswith("combined") and health["helpfulness_rm"] == str(tiny_reward_model_path)
    assert health["limits"]["max_batch_size"] == 2 and health["limits"]["max_connections"] == 6


def test_connections_past_the_cap_are_refused_at_once_and_served_again_after(combined_server):
    # Six clients that connect and send nothing hold every slot (a thread each); the seventh gets
    # 503 with Retry-After straight away instead of a seventh thread, and is served once they leave.
    import socket

    idle = [socket.create_connection(("127.0.0.1", combined_server.port)) for _ in range(6)]
    try:
        wait_until(lambda: combined_server.post({"query": ["x"]}).status_code == 503, 10, "the cap to fill")
        refused = combined_server.post({"query": ["x"]})
        assert refused.headers["Retry-After"] == "1"
        assert refused.json() == {"error": "too many open connections; retry shortly", "field": "(connection)"}
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: httpx.get(f"{combined_server.url}/health").status_code == 200, 10, "a slot to free")


USER_ONLY = "<|im_start|>user\nHello?<|im_end|>\n"
GOOD = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>"


@pytest.mark.parametrize("body, field", [
    (b"not json", "(body)"),
    (b"[1, 2]", "(body)"),
    (b"[" * 15_000, "(body)"),  # nesting deep enough to overflow the parser's recursion
    (b"\xff\xfe{}", "(body)"),
    ({"prompts": ["x"]}, "query"),
    ({"query": GOOD}, "query"),
    ({"query": []}, "query"),
    ({"query": [GOOD] * 9}, "query"),  # --max-queries 8
    ({"query": [GOOD, 3]}, "query[1]"),
    ({"query": [GOOD + "x" * 4000]}, "query[0]"),  # --max-query-chars 4000
    ({"query": ["plain text without a template"]}, "query[0]"),
    ({"query": [USER_ONLY]}, "query[0]"),  # nothing to score: no assistant response
    ({"query": ["plain text"], "prompts": ["other"]}, "query[0]"),  # the prompt does not lead the text
    ({"query": [GOOD], "prompts": []}, "prompts"),
    ({"query": [GOOD], "prompts": [7]}, "prompts[0]"),
    ({"query": [GOOD], "labels": "safety"}, "labels"),
])
def test_bad_input_is_refused_naming_the_field(combined_server, body, field):
    if isinstance(body, bytes):
        answer = httpx.post(f"{combined_server.url}/get_reward", content=body, timeout=30)
    else:
        answer = combined_server.post(body)

    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and answer.json()["error"].startswith(f"{field}: ")
    assert combined_server.post({"query": [GOOD]}).status_code == 200  # and the server still serves


def test_a_body_over_the_limit_is_refused_unread(combined_server):
    answer = httpx.post(f"{combined_server.url}/get_reward", content=b" " * 25_000, timeout=30)

    assert answer.status_code == 413 and answer.json()["field"] == "(body)"
    assert "at most 20000" in answer.json()["error"]
    chunked = httpx.post(f"{combined_server.url}/get_reward", content=iter([b'{"query": []}']), timeout=30)
    assert chunked.status_code == 411 and chunked.json()["field"] == "(body)"
    assert httpx.get(f"{combined_server.url}/nowhere").status_code == 404
    assert httpx.get(f"{combined_server.url}/health").status_code == 200


def test_one_reward_model_alone_answers_its_raw_score(tmp_path, tiny_reward_model_path, tokenizer):
    server = RewardServer(tmp_path, "--reward-model", str(tiny_reward_model_path))
    try:
        # Plain text (a trainer without a chat template): split at the prompt it sends.
        plain = {"query": ["Tell me a joke. I refuse."], "prompts": ["Tell me a joke."]}
        answers = [server.post(openrlhf_request(tokenizer, DIALOGUES)), server.post(plain)]
    finally:
        server.stop()

    expected = load_scorer(tiny_reward_model_path).score(DIALOGUES)
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["rewards"] == pytest.approx(expected, abs=1e-4)
    assert answers[0].json()["scores"] == pytest.approx([1 / (1 + math.exp(-s)) for s in expected], abs=1e-5)
    assert answers[0].json()["extra_logs"] == {}
    as_messages = [{"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": " I refuse."}]
    assert answers[1].json()["rewards"] == pytest.approx(load_scorer(tiny_reward_model_path).score([as_messages]), abs=1e-4)


@pytest.mark.django_db
@pytest.mark.parametrize("argv, message", [
    ([], "Give --helpfulness-rm and --safety-rm"),
    (["--reward-model", "x", "--safety-rm", "y"], "--reward-model alone"),
    (["--reward-model", "no-such-rm"], "--reward-model no-such-rm: no reward model named"),
    (["--safety-rm", "no-such-rm"], "--safety-rm no-such-rm: no reward model named"),
    (["--reward-model", "x", "--max-batch-size", "0"], "--max-batch-size: must be positive"),
    (["--reward-model", "x", "--batch-wait-ms", "-1"], "--batch-wait-ms: must be 0 or more"),
    (["--reward-model", "x", "--max-connections", "0"], "--max-connections: must be positive"),
])
def test_the_command_refuses_bad_arguments_clearly(argv, message):
    with pytest.raises(CommandError, match=message.replace("+", r"\+")):
        call_command("serve_rewards", *argv)
