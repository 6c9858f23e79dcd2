from margin.models import Job
from rlhf import finetune_work, jobs
from rlhf.config import DPOIterativeConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = ("Iterative DPO: each round samples K responses per prompt from the latest version, pairs the best and "
            "worst by the reward models, trains DPO into a new version DPO-V<n>-R<round>. For human labels use "
            "publish_samples, then train_dpo.")
    config_class = DPOIterativeConfig
    kind = Job.Kind.DPO_ITERATIVE
    params = staticmethod(jobs.dpo_iterative_params)
    start = staticmethod(jobs.dpo_iterative_start)
    run = staticmethod(finetune_work.dpo_iterative_run)
