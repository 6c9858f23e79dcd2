from margin.models import Job
from rlhf import finetune_work, jobs
from rlhf.config import GAttConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = ("Ghost Attention (Llama 2 sec. 3.3): sample multi-turn dialogues with an instruction on every user "
            "turn, fine-tune with it on the first turn only, and report turns kept before and after; a new "
            "version GAtt-V<n>. --hobbies / --languages / --public-figures edit the instruction lists.")
    config_class = GAttConfig
    kind = Job.Kind.GATT
    params = staticmethod(jobs.gatt_params)
    start = staticmethod(jobs.gatt_start)
    run = staticmethod(finetune_work.gatt_run)
