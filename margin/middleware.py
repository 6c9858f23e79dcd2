"""Sessions: an idle one ends, and an htmx request after it ended gets a 401, not the login page."""

import time

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import resolve_url


class HtmxSessionExpiredMiddleware:
    """Without this, `login_required` redirects, the XHR follows, and htmx swaps the login form
    over the half-finished judgment. A 401 swaps nothing: the page keeps what the annotator typed
    and annotate.js tells them to log in again (in another tab) and submit once more."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        login = resolve_url(settings.LOGIN_URL)
        if (getattr(request, "htmx", False) and response.status_code == 302
                and response.get("Location", "").split("?")[0] == login):
            return HttpResponse("Your session has expired; log in again.", status=401,
                                content_type="text/plain")
        return response


class SessionIdleTimeoutMiddleware:
    """Sliding idle timeout: a signed-in session lives SESSION_COOKIE_AGE
    (MARGIN_SESSION_IDLE_MINUTES) past its last use. Renewing on every request
    (SESSION_SAVE_EVERY_REQUEST) would write the session row on every 2-second htmx poll;
    renewing at most once a minute keeps the timeout within a minute of exact."""

    RENEW_SECONDS = 60

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = int(time.time())
            if now - request.session.get("_renewed_at", 0) >= self.RENEW_SECONDS:
                request.session["_renewed_at"] = now  # a change: the session and its cookie are saved anew
        return self.get_response(request)
