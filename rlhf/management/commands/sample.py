"""manage.py sample: K responses per prompt from a policy version, written as JSON lines."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.models import Project
from core.jsonio import RecordError, jsonl_rows
from core.vocabulary import ROLES
from rlhf.models import PolicyVersion
from rlhf.selectors import policy_prompts, policy_version_resolve


def prompts_read(path: Path) -> list[list[dict]]:
    """One prompt per line: {"prompt": "text"} or {"messages": [{"role": ..., "content": ...}, ...]}."""
    prompts = []
    try:
        for number, record in jsonl_rows(path):
            if isinstance(record, dict) and isinstance(record.get("prompt"), str):
                prompts.append([{"role": "user", "content": record["prompt"]}])
            elif isinstance(record, dict) and isinstance(record.get("messages"), list):
                prompts.append(_messages_check(record["messages"], f"{path} line {number}"))
            else:
                raise CommandError(f'{path} line {number}: expected {{"prompt": "..."}} or {{"messages": [...]}}')
    except OSError as bad:
        raise CommandError(f"--prompts {path}: {bad.strerror}") from bad
    except RecordError as bad:
        raise CommandError(f"--prompts {path}, {bad}") from bad
    return prompts


def _messages_check(messages, where):
    for i, message in enumerate(messages):
        if not (isinstance(message, dict) and message.get("role") in ROLES
                and isinstance(message.get("content"), str)):
            raise CommandError(f'{where}: messages[{i}] must be {{"role": "user"|"assistant"|"system", "content": "..."}}')
    if not messages or messages[-1]["role"] != "user":
        raise CommandError(f"{where}: the last message must be the user's (what the model answers)")
    return messages


class Command(BaseCommand):
    help = "Sample K responses per prompt from a policy version (or checkpoint) into a JSONL file."

    def add_arguments(self, parser):
        parser.add_argument("--policy", default="", help="policy version name or checkpoint path; default: newest active")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--prompts", type=Path, help='JSONL file: {"prompt": ...} or {"messages": [...]} per line')
        source.add_argument("--project", help="use the first user turn of this project's dialogues")
        parser.add_argument("--out", type=Path, required=True, help="where to write the JSONL samples")
        parser.add_argument("--k", type=int, default=1, help="samples per prompt")
        parser.add_argument("--temperature", type=float, default=0.7)
        parser.add_argument("--top-p", type=float, default=0.9)
        parser.add_argument("--max-new-tokens", type=int, default=128)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--batch-size", type=int, default=64, help="rows per generate call (local engine)")
        parser.add_argument("--limit", type=int, default=0, help="at most this many prompts (0: all)")

    def handle(self, *args, **options):
        from modelruntime.modelstore import ModelStoreError, checkpoint_is_complete
        from rlhf.backends import GenerationUnavailable, LocalBackend, backend_for
        from rlhf.generation import SamplingConfig

        if options["k"] < 1:
            raise CommandError(f"--k must be >= 1, got {options['k']}")
        try:
            sampling = SamplingConfig(temperature=options["temperature"], top_p=options["top_p"],
                                      max_new_tokens=options["max_new_tokens"], seed=options["seed"])
        except ValueError as bad:
            raise CommandError(str(bad)) from bad
        if options["prompts"]:
            prompts = prompts_read(options["prompts"])
        elif not Project.objects.filter(name=options["project"]).exists():
            raise CommandError(f"--project: no project named {options['project']!r}")
        else:
            prompts = [p.messages for p in policy_prompts(project_name=options["project"], heldout_fraction=0.0)]
        if options["limit"]:
            prompts = prompts[: options["limit"]]
        if not prompts:
            raise CommandError("no prompts to sample from")
        policy = options["policy"]
        if policy and checkpoint_is_complete(policy):
            backend, name = LocalBackend(checkpoint_path=policy, batch_size=options["batch_size"]), policy
        else:
            try:
                version = policy_version_resolve(policy)
            except PolicyVersion.DoesNotExist:
                raise CommandError(f"--policy: no policy version or checkpoint named {policy!r}") from None
            backend, name = backend_for(version, batch_size=options["batch_size"]), version.name
        try:
            with tqdm(total=len(prompts) * options["k"], desc="sampling", unit="response") as bar:
                def on_progress(done, total):
                    bar.n = done
                    bar.refresh()

                samples = backend.generate(prompts, sampling, k=options["k"], on_progress=on_progress)
        except (ModelStoreError, ValueError, GenerationUnavailable) as bad:
            raise CommandError(str(bad)) from bad
        options["out"].parent.mkdir(parents=True, exist_ok=True)
        with open(options["out"], "w") as out:
            for prompt, per_prompt in zip(prompts, samples):
                out.write(json.dumps({"messages": prompt, "policy": name, "sampling": sampling.to_dict(),
                                      "responses": [s.text for s in per_prompt]}) + "\n")
        self.stdout.write(f"wrote {len(prompts)} prompts x {options['k']} samples to {options['out']}")
