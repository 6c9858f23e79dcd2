"""Margin's reward models over HTTP, in OpenRLHF's remote reward-model protocol. No Django.

    POST /get_reward  {"query": [text, ...], "prompts": [text, ...], "labels": [...]}
                      -> {"rewards": [...], "scores": [...], "extra_logs": {name: [...]}}
    GET  /health      -> {"status": "ok", ...}

`query` is what OpenRLHF sends (`openrlhf/utils/agent.py`): each rollout's prompt and response
decoded with their special tokens, so with the chat template's markers; `prompts` and `labels`
are optional. Each text is split into messages at the reward model's chat-template markers
(rlhf/chat_text.py; plain text is split at its prompt) and scored as Margin scores everywhere:
    two RMs: rewards = logit(R_c), Llama 2's combined reward (safety gate 0.15), computed by
             rlhf/rewards.py's combined_reward_fn; scores = R_c, in [0, 1] as OpenRLHF's dynamic
             filtering expects; a label "safety" marks a safety prompt, which takes R_s always;
    one RM:  rewards = its raw score; scores = its sigmoid.
Rewards are not whitened here: Llama 2 whitens over the PPO batch, and OpenRLHF sends one
rollout per request, so the trainer normalises over its batch (OpenRLHF's advantage
normalisation). One worker thread scores for every connection (a scorer is not thread-safe, and one
model copy serves all); requests that arrive together are merged up to the maximum batch size.
Each connection holds a thread; past `max_connections` open at once, a new one is answered 503
with Retry-After and closed, so a flood of clients cannot exhaust the server's threads or memory.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from core.jsonio import TOO_DEEP
from core.vocabulary import check_messages
from rlhf.chat_text import ChatMarkers, messages_from_query
from rlhf.rewards import combined_reward_fn

logger = logging.getLogger(__name__)

SAFETY_LABEL = "safety"  # a `labels` entry marking a safety prompt (Llama 2's is_safety(p))


@dataclass(frozen=True)
class ServerLimits:
    max_batch_size: int = 8  # sequences per forward pass (OpenRLHF's serve_rm --batch_size)
    max_queries: int = 256  # texts per request
    max_query_chars: int = 65_536  # a text past the RM's max_length is cut from the left anyway
    max_body_bytes: int = 16 * 1024 * 1024  # checked on Content-Length, before the body is read
    batch_wait_seconds: float = 0.01  # how long a batch waits for more requests to join it
    max_connections: int = 64  # open connections (one thread each); past it a newcomer gets 503 at once

    def __post_init__(self):
        for name, value in asdict(self).items():
            if name == "batch_wait_seconds" and value < 0:
                raise LimitError(name, f"must be 0 or more, not {value}")
            if name != "batch_wait_seconds" and value < 1:
                raise LimitError(name, f"must be positive, not {value}")


class LimitError(ValueError):
    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field_name, self.message = field_name, message


class RequestError(ValueError):
    """A refused request: names the field at fault; `status` is the HTTP answer."""

    def __init__(self, field_name: str, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(f"{field_name}: {message}")
        self.field_name, self.status = field_name, status


def reward_request_read(body: bytes, *, limits: ServerLimits, markers: ChatMarkers | None):
    """(conversations, safety flags) from a /get_reward body, every text checked before any is scored."""
    try:
        data = json.loads(body)
    except ValueError as bad:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise RequestError("(body)", f"not JSON ({bad})") from None
    except RecursionError:
        raise RequestError("(body)", TOO_DEEP) from None
    if not isinstance(data, dict):
        raise RequestError("(body)", 'expected a JSON object like {"query": ["..."]}')
    if "query" not in data:
        raise RequestError("query", "missing: give the texts to score as a list of strings")
    queries = data["query"]
    if not isinstance(queries, list) or not queries:
        raise RequestError("query", "must be a non-empty list of strings")
    if len(queries) > limits.max_queries:
        raise RequestError("query", f"{len(queries)} texts; at most {limits.max_queries} per request")
    prompts = _parallel_list(data, "prompts", len(queries))
    labels = _parallel_list(data, "labels", len(queries))
    conversations = []
    for i, text in enumerate(queries):
        if not isinstance(text, str):
            raise RequestError(f"query[{i}]", "must be a string")
        if len(text) > limits.max_query_chars:
            raise RequestError(f"query[{i}]", f"{len(text)} characters; at most {limits.max_query_chars}")
        prompt = prompts[i] if prompts else None
        if prompt is not None and not isinstance(prompt, str):
            raise RequestError(f"prompts[{i}]", "must be a string or null")
        try:
            messages = messages_from_query(text, prompt=prompt, markers=markers)
            check_messages(messages)
        except ValueError as bad:  # ChatTextError, or check_messages' refusal
            raise RequestError(f"query[{i}]", str(bad)) from None
        conversations.append(messages)
    return conversations, [bool(labels) and labels[i] == SAFETY_LABEL for i in range(len(queries))]


def _parallel_list(data: dict, name: str, length: int):
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != length:
        raise RequestError(name, f"must be a list as long as query ({length} entries)")
    return value


@dataclass
class _Job:
    conversations: list
    safety_flags: list
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict | None = None
    error: Exception | None = None


class _ScoreLog:
    """A scorer that remembers what it scored (by conversation object), for extra_logs."""

    def __init__(self, scorer):
        self.scorer, self.seen = scorer, {}

    def score(self, conversations, batch_size=8):
        values = self.scorer.score(conversations, batch_size=batch_size)
        self.seen.update(zip(map(id, conversations), values))
        return values


class RewardBatcher:
    """The one thread that scores: requests queue here and are answered in merged batches."""

    def __init__(self, *, helpful_scorer=None, safety_scorer=None, limits: ServerLimits):
        if helpful_scorer is None and safety_scorer is None:
            raise ValueError("serving rewards needs a helpfulness or a safety reward model")
        self.helpful_scorer, self.safety_scorer, self.limits = helpful_scorer, safety_scorer, limits
        self.queries_scored = self.scoring_rounds = 0  # for /health
        self._pending: deque[_Job] = deque()
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name="reward-scorer", daemon=True).start()

    def rewards(self, conversations: list[list[dict]], safety_flags: list[bool]) -> dict:
        """The /get_reward answer for these conversations, once the scoring thread reaches them."""
        job = _Job(conversations, safety_flags)
        with self._ready:
            self._pending.append(job)
            self._ready.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.answer

    def _run(self):
        while True:
            batch = self._batch_take()
            try:
                answers = self._score([c for job in batch for c in job.conversations],
                                      [f for job in batch for f in job.safety_flags])
            except Exception as failed:  # the requests waiting on it get a 500; the thread lives on
                logger.exception("scoring failed")
                for job in batch:
                    job.error = failed
                    job.done.set()
                continue
            start = 0
            for job in batch:
                size = len(job.conversations)
                job.answer = {"rewards": answers["rewards"][start:start + size],
                              "scores": answers["scores"][start:start + size],
                              "extra_logs": {k: v[start:start + size] for k, v in answers["extra_logs"].items()}}
                start += size
                job.done.set()

    def _batch_take(self) -> list[_Job]:
        """The oldest request, and those that join it within the wait while the batch has room."""
        with self._ready:
            while not self._pending:
                self._ready.wait()
            batch = [self._pending.popleft()]
            size = len(batch[0].conversations)
            deadline = time.monotonic() + self.limits.batch_wait_seconds
            while size < self.limits.max_batch_size:
                if self._pending:
                    if size + len(self._pending[0].conversations) > self.limits.max_batch_size:
                        break
                    batch.append(self._pending.popleft())
                    size += len(batch[-1].conversations)
                elif not self._ready.wait(max(0.0, deadline - time.monotonic())):
                    break
            return batch

    def _score(self, conversations: list[list[dict]], safety_flags: list[bool]) -> dict:
        size = self.limits.max_batch_size
        if self.helpful_scorer is None or self.safety_scorer is None:
            scorer = self.helpful_scorer or self.safety_scorer
            rewards = scorer.score(conversations, batch_size=size)
            extra_logs = {}
        else:
            helpful, safety = _ScoreLog(self.helpful_scorer), _ScoreLog(self.safety_scorer)
            rewards = [0.0] * len(conversations)
            for flag in (False, True):  # is_safety(p) is one flag per request text: two calls
                rows = [i for i, f in enumerate(safety_flags) if f == flag]
                if rows:
                    reward_fn = combined_reward_fn(helpful, safety, is_safety=lambda prompt, flag=flag: flag, batch_size=size)
                    for i, value in zip(rows, reward_fn([conversations[i] for i in rows])):
                        rewards[i] = value
            extra_logs = {
                "reward/safety": [_sigmoid(safety.seen[id(c)]) for c in conversations],
                # the gate (or a safety prompt) kept the helpfulness RM from running on it
                "reward/safety_gated": [0.0 if id(c) in helpful.seen else 1.0 for c in conversations],
            }
        if not all(math.isfinite(r) for r in rewards):
            raise ValueError("a reward model returned a non-finite score")
        self.queries_scored += len(conversations)
        self.scoring_rounds += 1
        return {"rewards": rewards, "scores": [_sigmoid(r) for r in rewards], "extra_logs": extra_logs}


def _sigmoid(value: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * value))  # no overflow for large |value|


def reward_server_build(*, batcher: RewardBatcher, limits: ServerLimits, markers: ChatMarkers | None,
                        host: str, port: int, description: dict) -> ThreadingHTTPServer:
    """A threading HTTP server (not started) answering /get_reward and /health."""

    class Handler(_RewardHandler):
        pass

    Handler.batcher, Handler.limits, Handler.markers, Handler.description = batcher, limits, markers, description
    server = _CappedServer((host, port), Handler)
    server.daemon_threads = True
    server.slots = threading.BoundedSemaphore(limits.max_connections)
    return server


class _CappedServer(ThreadingHTTPServer):
    """A thread per connection, at most `slots` of them; the rest are refused without a thread."""

    slots: threading.BoundedSemaphore

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def _refuse_busy(sock):
    body = json.dumps({"error": "too many open connections; retry shortly", "field": "(connection)"}).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        sock.settimeout(1)  # a client that does not read must not hold the accepting thread
        sock.sendall(head + body)
    except OSError:
        pass


class _RewardHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: OpenRLHF posts many small requests
    timeout = 60  # seconds a client may take to send its request; a stalled one frees its thread
    batcher: RewardBatcher
    limits: ServerLimits
    markers: ChatMarkers | None
    description: dict

    def do_GET(self):
        if urlsplit(self.path).path != "/health":
            return self._error(RequestError("(path)", "no such endpoint; use POST /get_reward or GET /health",
                                            HTTPStatus.NOT_FOUND))
        self._answer(HTTPStatus.OK, {"status": "ok", **self.description, "limits": asdict(self.limits),
                                     "queries_scored": self.batcher.queries_scored,
                                     "scoring_rounds": self.batcher.scoring_rounds})

    def do_POST(self):
        try:
            if urlsplit(self.path).path != "/get_reward":
                raise RequestError("(path)", "no such endpoint; use POST /get_reward or GET /health", HTTPStatus.NOT_FOUND)
            conversations, flags = reward_request_read(self._body(), limits=self.limits, markers=self.markers)
        except RequestError as refused:
            return self._error(refused)
        try:
            answer = self.batcher.rewards(conversations, flags)
        except Exception as failed:
            return self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"scoring failed: {failed}"})
        self._answer(HTTPStatus.OK, answer)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError("(body)", "send a Content-Length, not a chunked body", HTTPStatus.LENGTH_REQUIRED)
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError("(body)", "Content-Length is required", HTTPStatus.LENGTH_REQUIRED)
        if not length.isdigit():
            self.close_connection = True
            raise RequestError("(body)", f"bad Content-Length {length!r}")
        if int(length) > self.limits.max_body_bytes:
            self.close_connection = True  # the unread body must not be taken for the next request
            raise RequestError("(body)", f"{length} bytes; at most {self.limits.max_body_bytes}",
                               HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(int(length))

    def _error(self, refused: RequestError):
        self._answer(refused.status, {"error": str(refused), "field": refused.field_name})

    def _answer(self, status: int, payload: dict):
        body = json.dumps(payload, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        logger.info("%s %s", self.address_string(), format % args)
