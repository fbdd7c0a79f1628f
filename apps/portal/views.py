"""The parent portal: sign-in and the Fees and Fines page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .forms import ParentAuthenticationForm
from .selectors import portal_page_for


class ParentLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = ParentAuthenticationForm
    redirect_authenticated_user = True


@login_required(login_url="portal:login")
def fees_page(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/fees.html", portal_page_for(user=request.user))
