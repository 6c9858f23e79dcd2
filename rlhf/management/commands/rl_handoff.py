"""manage.py rl_handoff: hand a PPO run to OpenRLHF (rlhf/handoff.py). Writes the prompt dataset
and prints the reward-server and OpenRLHF commands; with --ray-address it also submits the run to
the Ray cluster and follows it (here, or on a worker with --queue), importing the result as a new
policy version."""

import shlex

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from margin.cli import config_arguments_add, config_from_options, validation_message
from margin.models import Job
from rlhf import handoff
from rlhf.management.commands._policy_job import job_run_here


class Command(BaseCommand):
    help = ("Hand PPO to OpenRLHF: the prompt dataset, the serve_rewards and train_ppo_ray commands (KL, batch "
            "sizes, lr from the PPO config); with --ray-address, submit the run and import its checkpoint.")

    def add_arguments(self, parser):
        parser.add_argument("--engine", required=True, choices=[handoff.ENGINE], help="the RL engine to hand off to")
        parser.add_argument("--ray-address", default="", help="Ray dashboard address (http://HEAD:8265): submit the run there")
        parser.add_argument("--reward-url", default="",
                            help="Margin's reward server as the cluster reaches it "
                                 f"(default: {handoff.reward_url_default()})")
        parser.add_argument("--output", default="", help="folder every node sees for the dataset, plan and OpenRLHF's "
                                                         "output (default: the model store's policies/<name>/openrlhf)")
        parser.add_argument("--queue", action="store_true", help="with --ray-address: follow the run on a worker, not here")
        parser.add_argument("--import-plan", default="", metavar="HANDOFF_JSON",
                            help="after running the printed command yourself: import its checkpoint as the new "
                                 "policy version (the handoff.json this command wrote)")
        config_arguments_add(parser, handoff.OpenRLHFConfig)

    def handle(self, *args, engine, ray_address, reward_url, output, queue, import_plan, **options):
        if import_plan:
            try:
                params = handoff.rl_handoff_plan_read(import_plan)
            except ValidationError as bad:
                raise CommandError(_with_flags(validation_message(bad))) from bad
            job_run_here(self, kind=Job.Kind.RL_HANDOFF, params=params, run=handoff.rl_handoff_import_run)
            return
        if queue and not ray_address:
            raise CommandError("--queue: a worker submits the run to a Ray cluster; give --ray-address too")
        config = config_from_options(options, handoff.OpenRLHFConfig)
        try:
            params = handoff.rl_handoff_prepare(config=config, reward_url=reward_url, output=output,
                                                ray_address=ray_address)
        except ValidationError as bad:
            raise CommandError(_with_flags(validation_message(bad))) from bad
        self.stdout.write(f"Prompt dataset: {params['dataset']} ({params['data']['prompts']} prompts)")
        self.stdout.write(f"Policy checkpoint: {params['argv'][params['argv'].index('--actor.model_name_or_path') + 1]}")
        self.stdout.write(f"1. Start Margin's reward server where the cluster can reach {params['reward_url']}:")
        self.stdout.write("   " + shlex.join(params["serve_rewards"]))
        self.stdout.write("2. Run OpenRLHF (or pass --ray-address to have Margin submit it):")
        self.stdout.write("   " + shlex.join(params["argv"]))
        if not ray_address:
            return
        if queue:
            job = handoff.rl_handoff_start(params=params)
            self.stdout.write(f"queued job {job.pk} ({job.get_kind_display()})")
            return
        job_run_here(self, kind=Job.Kind.RL_HANDOFF, params=params, run=handoff.rl_handoff_run)


def _with_flags(message: str) -> str:
    """'policy: ...' -> '--policy: ...': the user typed flags, not field names."""
    name, sep, rest = message.partition(": ")
    return f"--{name.replace('_', '-')}{sep}{rest}" if sep and name.isidentifier() else message
