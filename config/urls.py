from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.security import two_step

admin.site.site_header = "FeeSync"
admin.site.site_title = "FeeSync staff"
admin.site.index_title = "District fees and payments"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # The staff sign-in with its code step; listed before admin.site.urls so that
    # /admin/login/ (reverse("admin:login")) is this view, not the admin's own.
    path("admin/login/", two_step.StaffLoginView.as_view(), name="staff_login"),
    path("admin/login/code/", two_step.login_code, name="staff_login_code"),
    path("admin/two-step/", admin.site.admin_view(two_step.setup_page), name="staff_two_step"),
    path("admin/", admin.site.urls),
    path("portal/", include("apps.portal.urls")),
    path("api/", include("apps.partner_api.urls")),
    # Anthology's users look for the API's docs here.
    path("swagger/", RedirectView.as_view(url="/api/docs/", permanent=False)),
]
