from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "portal"

urlpatterns = [
    path("", views.fees_page, name="fees"),
    path("payments/changed/", views.money_changed_view, name="money_changed"),
    path("students/<int:student_id>/", views.student_page, name="student"),
    path("students/<int:student_id>/<slug:slug>/", views.section_page, name="section"),
    path(
        "students/<int:student_id>/documents/<int:document_id>/download/",
        views.document_download_view,
        name="document",
    ),
    path(
        "students/<int:student_id>/activities/<int:offer_id>/sign-up/",
        views.activity_sign_up_view,
        name="sign_up",
    ),
    path("login/", views.ParentLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="portal:login"), name="logout"),
    path("password-reset/", views.ParentPasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        views.ParentPasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        views.ParentPasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "invitation/<uidb64>/<token>/",
        views.ParentInvitationView.as_view(),
        name="invitation",
    ),
    path(
        "password-reset/complete/",
        views.ParentPasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
