"""htmx requests from a browser whose session ended get a 401 instead of the login page.

Without this, `login_required` redirects, the XHR follows, and htmx swaps the login form over the
half-finished judgment. A 401 swaps nothing: the page keeps what the annotator typed and
annotate.js tells them to log in again (in another tab) and submit once more.
"""

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import resolve_url


class HtmxSessionExpiredMiddleware:
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
