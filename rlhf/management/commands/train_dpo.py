from margin.models import Job
from rlhf import finetune_work, jobs
from rlhf.config import DPOJobConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = ("DPO from the project's judged comparisons (the reward models' pair builder) into a new version "
            "DPO-V<n>; --loss-type sigmoid (DPO), ipo or margin. Without CUDA the cpu preset is used.")
    config_class = DPOJobConfig
    kind = Job.Kind.DPO
    params = staticmethod(jobs.dpo_params)
    start = staticmethod(jobs.dpo_start)
    run = staticmethod(finetune_work.dpo_run_job)
