from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from margin.forms import LoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("data/", include("dataio.urls")),
    path("dashboard/", include("dashboard.urls")),
    path("", include("annotation.urls")),
]
