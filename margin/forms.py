from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator


class LoginForm(AuthenticationForm):
    """Django's login form, but a username longer than any account's is refused before anyone
    authenticates: it never reaches the failed-login records (django-axes keeps the username in
    a 255-character column, and PostgreSQL refuses a longer value with a 500)."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        username = self.fields["username"]
        username.validators.append(MaxLengthValidator(username.max_length))
