from margin.models import Job
from rlhf import finetune_work, jobs
from rlhf.config import SFTJobConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = ("Fine-tune a policy on the project's demonstrations (and optionally an SFT file and rejection-sampling "
            "winners) into a new version SFT-V<n> (Llama 2 sec. 3.1). Without CUDA the cpu preset is used.")
    config_class = SFTJobConfig
    kind = Job.Kind.SFT
    params = staticmethod(jobs.sft_params)
    start = staticmethod(jobs.sft_start)
    run = staticmethod(finetune_work.sft_run)
