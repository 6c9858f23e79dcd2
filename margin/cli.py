"""Helpers shared by management commands: progress bars and `--set name=value` options."""

import json

from django.core.management.base import CommandError
from tqdm import tqdm

from core.jsonio import TOO_DEEP


class ProgressBar:
    """An `on_progress(step, total, metrics=None, log_line=None)` callback drawing a tqdm bar."""

    def __init__(self, description, stream):
        self.bar = tqdm(desc=description, total=0, file=stream, dynamic_ncols=True)

    def __call__(self, step, total, metrics=None, log_line=None):
        if total and self.bar.total != total:
            self.bar.reset(total=total)
        self.bar.n = step
        if metrics:
            self.bar.set_postfix({k: v for k, v in metrics.items() if v is not None}, refresh=False)
        if log_line:
            self.bar.write(log_line)
        self.bar.refresh()

    def close(self):
        self.bar.close()


def parse_settings(pairs: list[str]) -> dict:
    """['lr=1e-5', 'margin_scheme=large'] -> {'lr': 1e-05, 'margin_scheme': 'large'}."""
    values = {}
    for item in pairs or []:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise CommandError(f"--set expects name=value, got {item!r}")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw  # a bare word is a string
        except RecursionError:
            raise CommandError(f"--set {name}: {TOO_DEEP}") from None
    return values
