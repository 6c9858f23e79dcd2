"""manage.py serve_rewards: Margin's reward models over HTTP for external RL trainers
(OpenRLHF's --remote_rm_url, a TRL or verl reward function); the server is rlhf/reward_server.py."""

import logging

from django.core.management.base import BaseCommand, CommandError

from modelruntime.modelstore import ModelStoreError
from rewardmodel.scoring import load_scorer
from rlhf.chat_text import chat_markers_learn
from rlhf.reward_server import LimitError, RewardBatcher, ServerLimits, reward_server_build
from rlhf.rewards import SAFETY_GATE

LIMIT_FLAGS = {"max_batch_size": "--max-batch-size", "max_queries": "--max-queries",
               "max_query_chars": "--max-query-chars", "max_body_bytes": "--max-body-bytes",
               "max_connections": "--max-connections", "batch_wait_seconds": "--batch-wait-ms"}


class Command(BaseCommand):
    help = ("Serve reward models in OpenRLHF's remote reward-model protocol: POST /get_reward "
            '{"query": [...]} -> {"rewards": [...]}, GET /health. Two RMs give Llama 2\'s combined reward.')

    def add_arguments(self, parser):
        parser.add_argument("--helpfulness-rm", default="", help="helpfulness reward model: registered name or checkpoint path")
        parser.add_argument("--safety-rm", default="", help="safety reward model: registered name or checkpoint path")
        parser.add_argument("--reward-model", default="", help="one reward model alone (instead of the two above): its raw score")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
        parser.add_argument("--port", type=int, default=5000)
        parser.add_argument("--device", default=None, help="torch device (default: CUDA when present, else CPU)")
        defaults = ServerLimits()
        parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size, help="sequences per forward pass")
        parser.add_argument("--max-queries", type=int, default=defaults.max_queries, help="texts per request")
        parser.add_argument("--max-query-chars", type=int, default=defaults.max_query_chars, help="characters per text")
        parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes, help="bytes per request body")
        parser.add_argument("--max-connections", type=int, default=defaults.max_connections,
                            help="open connections at once; more are answered 503 with Retry-After")
        parser.add_argument("--batch-wait-ms", type=float, default=defaults.batch_wait_seconds * 1000,
                            help="how long a batch waits for concurrent requests to join it")

    def handle(self, *args, helpfulness_rm, safety_rm, reward_model, host, port, device, batch_wait_ms, **options):
        if reward_model and (helpfulness_rm or safety_rm):
            raise CommandError("Give --reward-model alone, or --helpfulness-rm and/or --safety-rm, not both.")
        if not (reward_model or helpfulness_rm or safety_rm):
            raise CommandError("Give --helpfulness-rm and --safety-rm (the combined reward), or --reward-model.")
        limits = self._limits(options, batch_wait_ms)
        scorers = {}
        for role, flag, name in (("helpful", "--reward-model" if reward_model else "--helpfulness-rm", helpfulness_rm or reward_model),
                                 ("safety", "--safety-rm", safety_rm)):
            if name:
                try:
                    scorers[role] = load_scorer(name, device=device)
                except (ModelStoreError, ValueError, OSError) as bad:
                    raise CommandError(f"{flag} {name}: {bad}") from bad
        # The markers come from the (first) RM's tokenizer: Margin's policies and RMs share a template.
        markers = chat_markers_learn(next(iter(scorers.values())).tokenizer)
        if markers is None:
            self.stderr.write("The reward model's chat template has no role markers Margin can split at: "
                              'each query must come with its prompt in "prompts".')
        combined = len(scorers) == 2
        description = {
            "reward": f"combined (Llama 2, safety gate {SAFETY_GATE})" if combined else "one reward model",
            "helpfulness_rm": helpfulness_rm or reward_model, "safety_rm": safety_rm,
        }
        batcher = RewardBatcher(helpful_scorer=scorers.get("helpful"), safety_scorer=scorers.get("safety"), limits=limits)
        try:
            server = reward_server_build(batcher=batcher, limits=limits, markers=markers, host=host, port=port,
                                         description=description)
        except OSError as bad:
            raise CommandError(f"--host {host} --port {port}: {bad.strerror}") from bad
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        self.stdout.write(f"Serving {description['reward']} on http://{host}:{server.server_address[1]}/get_reward "
                          "(GET /health); Ctrl-C stops.")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    def _limits(self, options, batch_wait_ms) -> ServerLimits:
        values = {name: options[name] for name in LIMIT_FLAGS if name != "batch_wait_seconds"}
        values["batch_wait_seconds"] = batch_wait_ms / 1000
        try:
            return ServerLimits(**values)
        except LimitError as bad:
            raise CommandError(f"{LIMIT_FLAGS[bad.field_name]}: {bad.message}") from bad
