from margin.models import Job
from rlhf import services
from rlhf.config import PPOConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = "PPO against the reward models (Llama 2 combined reward); a new policy version. --preset cpu for CPU-sized runs."
    config_class = PPOConfig
    kind = Job.Kind.PPO
    params = staticmethod(services.ppo_params)
    start = staticmethod(services.ppo_start)
    run = staticmethod(services.ppo_run)
