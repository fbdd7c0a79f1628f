from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "FeeSync"
admin.site.site_title = "FeeSync staff"
admin.site.index_title = "District fees and payments"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("portal/", include("apps.portal.urls")),
]
