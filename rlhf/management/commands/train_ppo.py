from margin.models import Job
from rlhf import jobs, work
from rlhf.config import PPOConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = "PPO against the reward models (Llama 2 combined reward); a new policy version. --preset cpu for CPU-sized runs."
    config_class = PPOConfig
    kind = Job.Kind.PPO
    params = staticmethod(jobs.ppo_params)
    start = staticmethod(jobs.ppo_start)
    run = staticmethod(work.ppo_run)
