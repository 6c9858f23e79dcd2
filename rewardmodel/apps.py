from django.apps import AppConfig


class RewardmodelConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'rewardmodel'
