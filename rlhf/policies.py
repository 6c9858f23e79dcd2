"""Policy versions as staff manage them: register a model an OpenAI-compatible server serves, set
a version's generation backend, and the `vllm serve` command that serves a version Margin made."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from rlhf.backends import OPENAI, vllm_serve_command
from rlhf.models import PolicyVersion

BACKEND_FIELDS = ("backend", "openai_base_url", "served_model", "api_key_env", "max_in_flight", "timeout_seconds")
ADAPTER_CONFIG = "adapter_config.json"  # what peft's save_pretrained writes beside a LoRA adapter


def policy_backend_update(*, version: PolicyVersion, **fields) -> PolicyVersion:
    """Set the version's backend fields (BACKEND_FIELDS); ValidationError({field: message})."""
    unknown = set(fields) - set(BACKEND_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "not a backend setting"})
    with transaction.atomic():
        version = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        for name, value in fields.items():
            setattr(version, name, value)
        version.full_clean()
        version.save(update_fields=list(fields))
    return version


def policy_register(*, name: str, openai_base_url: str, served_model: str, api_key_env: str = "",
                    checkpoint_path: str = "", parent: str = "", **limits) -> tuple[PolicyVersion, bool]:
    """A model served by an OpenAI-compatible server as a policy version (created, or an existing
    version switched to the server); (version, created). `checkpoint_path`: its weights in the
    model store, needed only to fine-tune it here."""
    fields = dict(backend=OPENAI, openai_base_url=openai_base_url, served_model=served_model,
                  api_key_env=api_key_env, **limits)
    existing = PolicyVersion.objects.filter(name=name).first()
    if existing is not None:
        if checkpoint_path and checkpoint_path != existing.checkpoint_path:
            raise ValidationError({"checkpoint_path": f"{name!r} exists with checkpoint {existing.checkpoint_path}; "
                                                      "a checkpoint is set when a version is made"})
        return policy_backend_update(version=existing, **fields), False
    parent_version = None
    if parent:
        parent_version = PolicyVersion.objects.filter(name=parent).first()
        if parent_version is None:
            raise ValidationError({"parent": f"no policy version named {parent!r}"})
    version = PolicyVersion(name=name, kind=PolicyVersion.Kind.BASE, parent=parent_version,
                            checkpoint_path=checkpoint_path, notes="registered as a served model", **fields)
    version.full_clean()
    version.save()
    return version, True


def policy_serve_command(*, version: PolicyVersion, host: str = "0.0.0.0", port: int = 8000) -> list[str]:
    """`vllm serve` for the version's checkpoint: itself when full, over its base when a LoRA adapter."""
    checkpoint = Path(version.checkpoint_path) if version.checkpoint_path else None
    if checkpoint is None or not checkpoint.is_dir():
        raise ValidationError({"checkpoint_path": f"{version.name!r} has no checkpoint on this machine to serve"})
    if not (checkpoint / ADAPTER_CONFIG).is_file():
        return vllm_serve_command(name=version.name, checkpoint=checkpoint, host=host, port=port)
    adapter = json.loads((checkpoint / ADAPTER_CONFIG).read_text())
    # The adapter's base: the nearest ancestor with full weights (peft records a path that may
    # have moved since).
    base = next((v.checkpoint_path for v in version.lineage()[1:]
                 if v.checkpoint_path and not (Path(v.checkpoint_path) / ADAPTER_CONFIG).exists()),
                adapter.get("base_model_name_or_path"))
    if not base:
        raise ValidationError({"parent": f"{version.name!r} is a LoRA adapter with no full-weight ancestor to serve it on"})
    return vllm_serve_command(name=version.name, checkpoint=checkpoint, base=base, lora_rank=adapter.get("r"),
                              host=host, port=port)
