"""Payments on the staff site: each vendor integration's setup page and dashboard, and the
sync engine's records (changes waiting, findings, task runs) as read-only lists.

The setup page replaces the integration's admin change form (see `apps.vendors.views`):
each section saves through one service, and nothing here saves an integration itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, re_path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from apps.common.admin import (
    ActionPageMixin,
    FeeSyncMedia,
    NotFoundMixin,
    ReadOnlyAdmin,
    admin_url,
    short_when,
    staff_user,
)
from apps.fees.admin import student_link
from apps.fees.forms import dollars
from apps.fees.money import money_text
from apps.fees.once import PAGE_OUT_OF_DATE
from apps.fees.services import student_credit

from . import findings
from .display import counts_text, duration, run_shown
from .engine import outbox_retry_parked
from .forms import IntegrationAddForm, add_service_errors
from .models import Discrepancy, HeldMovement, Integration, OutboxItem, SyncedFee, TaskRun
from .scope import Scope
from .services import integration_create
from .views import (
    DashboardPages,
    SetupPages,
    _audit_url,
    may_act_on_held,
    may_change,
    may_run,
    may_view,
)


class SetupMedia(FeeSyncMedia):
    css = {"all": ["feesync/admin.css", "feesync/setup.css"]}


@admin.register(Integration)
class IntegrationAdmin(
    NotFoundMixin, SetupPages, DashboardPages, ActionPageMixin, admin.ModelAdmin[Integration]
):
    """One line per vendor integration; its page is the setup page."""

    Media = SetupMedia
    list_display = ["vendor", "name", "state", "waiting", "pages"]
    list_display_links = None
    search_fields = ["name", "slug"]
    search_help_text = "Search by name or short name."

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_waiting=Count("outbox", filter=Q(outbox__state=OutboxItem.State.PENDING)),
                n_parked=Count("outbox", filter=Q(outbox__state=OutboxItem.State.PARKED)),
            )
        )

    @admin.display(description="Vendor", ordering="vendor_kind")
    def vendor(self, obj: Integration) -> str:
        return format_html(
            '<a href="{}"><strong>{}</strong></a><br><span class="feesync-quiet">{}</span>',
            admin_url(obj),
            obj.vendor_name,
            obj.slug,
        )

    @admin.display(description="State", ordering="enabled")
    def state(self, obj: Integration) -> str:
        if not obj.enabled:
            return "Not enabled"
        if obj.consecutive_failures:
            return mark_safe(
                '<span class="feesync-flag feesync-flag-bad">Vendor not answering</span>'
            )
        return mark_safe('<span class="feesync-flag feesync-flag-ok">Enabled</span>')

    @admin.display(description="Changes waiting")
    def waiting(self, obj: Integration) -> str:
        waiting, parked = obj.n_waiting, obj.n_parked  # type: ignore[attr-defined]
        text = f"{waiting:,}"
        if parked:
            text += f" ({parked:,} parked)"
        return text

    @admin.display(description="Pages")
    def pages(self, obj: Integration) -> str:
        return format_html(
            '<a href="{}">Setup</a> · <a href="{}">Dashboard</a>',
            admin_url(obj),
            reverse("admin:vendors_integration_dashboard", args=[obj.pk]),
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"title": "Payment vendor integrations", **(extra_context or {})}
        return super().changelist_view(request, extra)

    # --- who may do what ---

    def has_view_permission(self, request: HttpRequest, obj: Integration | None = None) -> bool:
        return may_view(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Integration | None = None) -> bool:
        # Deleting would take its sync history with it; an integration is disabled instead.
        return False

    # --- pages ---

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<str:object_id>/setup/<slug:section>/",
                view(self.section_view),
                name="vendors_integration_section",
            ),
            path(
                "<str:object_id>/dashboard/",
                view(self.dashboard_view),
                name="vendors_integration_dashboard",
            ),
            path(
                "<str:object_id>/dashboard/<slug:action>/",
                view(self.dashboard_action_view),
                name="vendors_integration_dashboard_action",
            ),
            path(
                "<str:object_id>/findings/<int:discrepancy_id>/<slug:action>/",
                view(self.discrepancy_view),
                name="vendors_integration_discrepancy",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST":
            # Each section posts to its own URL; the page itself only shows them.
            self._integration(request, object_id)  # a bad id is a 404 here too
            return HttpResponseRedirect(request.path)
        return self.setup_view(request, object_id)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not (self.has_add_permission(request) and may_change(request.user)):
            raise PermissionDenied
        form = IntegrationAddForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                integration = integration_create(
                    vendor_kind=data["vendor_kind"],
                    name=data["name"],
                    slug=data["slug"],
                    service_url=data["service_url"],
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"The {integration.vendor_name} integration “{integration.name}” is created "
                    "and not enabled. Work through the sections below in order; nothing is "
                    "sent to the vendor until you enable it.",
                )
                return HttpResponseRedirect(admin_url(integration))
        return self.render_action_page(
            request,
            form=form,
            title="Add an integration",
            submit_label="Create and continue to setup",
            cancel_url=reverse("admin:vendors_integration_changelist"),
            intro="Choose the payment vendor the district has signed with. On the next page "
            "you enter its credentials, test the connection and choose what it receives.",
        )

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The audit log (before and after of every setup change) is the history.
        integration = self._integration(request, object_id)
        return HttpResponseRedirect(_audit_url(integration))


class FeeSyncStateFilter(admin.SimpleListFilter):
    """The fee list's "sync state" filter, set-based (one subquery per state, never a
    query per fee): waiting to be sent, parked, held by the vendor at its latest version
    with nothing waiting, or in no enabled integration's scope (see `apps.vendors.scope`)."""

    title = "sync state"
    parameter_name = "sync"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [
            ("waiting", "Waiting to be sent"),
            ("parked", "Parked: needs a retry"),
            ("vendor", "At the vendor"),
            ("none", "Not in any integration's scope"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        outbox = OutboxItem.objects.filter(fee=OuterRef("pk"))
        if value == "waiting":
            return queryset.filter(Exists(outbox.filter(state=OutboxItem.State.PENDING)))
        if value == "parked":
            return queryset.filter(Exists(outbox.filter(state=OutboxItem.State.PARKED)))
        if value == "vendor":
            synced = SyncedFee.objects.filter(
                fee=OuterRef("pk"), acknowledged_version__gte=OuterRef("version")
            )
            return queryset.filter(Exists(synced)).exclude(Exists(outbox))
        if value == "none":
            scopes = Scope.of_each(Integration.objects.filter(enabled=True))
            covered = Q(pk__in=[])
            for scope in scopes.values():
                covered |= scope.q()
            return queryset.exclude(covered)
        return queryset


# --- the sync engine's records: read-only lists -------------------------------------------------


class SyncRecordAdmin(ReadOnlyAdmin):
    """Read-only; linked from the dashboard's numbers, filtered to one integration."""

    list_per_page = 100
    show_full_result_count = False

    # What support searches by: the fee's reference, and the student's number or name
    # (through the fee, so findings without a fee are found by their reference only).
    search_fields = [
        "=fee__reference",
        "^fee__student__student_number",
        "fee__student__last_name",
        "fee__student__first_name",
    ]
    search_help_text = "Search by fee reference, student number or student name."

    @admin.display(description="Fee", ordering="fee__reference")
    def fee_link(self, obj: Any) -> str:
        fee = getattr(obj, "fee", None)
        if fee is None:
            return getattr(obj, "fee_ref", "") or "—"
        return format_html('<a href="{}">{}</a>', admin_url(fee), fee.reference)

    @admin.display(description="Student", ordering="fee__student__last_name")
    def student_link(self, obj: Any) -> str:
        fee = getattr(obj, "fee", None)
        if fee is None:
            return getattr(obj, "student_number", "") or "—"
        return student_link(fee.student)

    @admin.display(description="Charge", ordering="fee__amount")
    def fee_what(self, obj: Any) -> str:
        fee = getattr(obj, "fee", None)
        if fee is None:
            return "—"
        return format_html(
            '{}<br><span class="feesync-quiet">{}</span>', fee.description, dollars(fee.amount)
        )

    @admin.display(description="Integration", ordering="integration__name")
    def integration_link(self, obj: Any) -> str:
        integration = obj.integration
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:vendors_integration_dashboard", args=[integration.pk]),
            integration.name,
        )


@admin.register(OutboxItem)
class OutboxItemAdmin(SyncRecordAdmin):
    list_display = [
        "fee_link",
        "student_link",
        "fee_what",
        "integration_link",
        "state",
        "version",
        "attempts",
        "waiting_since",
        "next_try",
        "last_error",
    ]
    list_select_related = ["fee__student", "integration"]
    list_filter = ["integration", "state"]
    actions = ["retry_selected"]

    @admin.display(description="Waiting since", ordering="created_at")
    def waiting_since(self, obj: OutboxItem) -> str:
        return short_when(obj.created_at)

    @admin.display(description="Next try", ordering="next_attempt_at")
    def next_try(self, obj: OutboxItem) -> str:
        if obj.state == OutboxItem.State.PARKED:
            return "Only when retried"
        return short_when(obj.next_attempt_at)

    @admin.action(description="Retry the selected parked changes")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[OutboxItem]) -> None:
        if not may_run(request.user):
            raise PermissionDenied
        total = 0
        for integration_id in set(queryset.values_list("integration_id", flat=True)):
            integration = Integration.objects.get(pk=integration_id)
            ids = list(queryset.filter(integration=integration).values_list("pk", flat=True))
            total += outbox_retry_parked(
                integration=integration, item_ids=ids, by_id=request.user.pk
            )
        self.message_user(request, f"{total} parked change(s) will be sent again now.")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not may_run(request.user):
            actions.pop("retry_selected", None)
        return actions


class OpenFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "open"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [("yes", "Open"), ("no", "Resolved or repaired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Discrepancy)
class DiscrepancyAdmin(SyncRecordAdmin):
    list_display = [
        "found",
        "kind",
        "fee_link",
        "student_link",
        "fee_what",
        "vendor_ref",
        "integration_link",
        "detail",
        "resolution",
    ]
    list_select_related = ["fee__student", "integration", "resolved_by"]
    list_filter = [OpenFilter, "integration", "kind", "repaired"]
    search_fields = ["=fee_ref", "=vendor_ref", *SyncRecordAdmin.search_fields[1:]]
    search_help_text = (
        "Search by fee reference, the vendor's payment id, student number or student name."
    )

    @admin.display(description="Found", ordering="created_at")
    def found(self, obj: Discrepancy) -> str:
        return short_when(obj.created_at)

    @admin.display(description="Resolution")
    def resolution(self, obj: Discrepancy) -> str:
        if obj.repaired:
            return "Repaired by FeeSync"
        if obj.resolved_at is None:
            return "Open"
        who = obj.resolved_by.get_username() if obj.resolved_by else ""
        return f"{short_when(obj.resolved_at)} {who}: {obj.resolution_note}".strip()


@admin.register(TaskRun)
class TaskRunAdmin(SyncRecordAdmin):
    Media = SetupMedia  # the outcome flags' colours
    list_display = [
        "started_at",
        "task",
        "integration_link",
        "trigger",
        "outcome_shown",
        "took",
        "counts_shown",
        "error_shown",
    ]
    list_select_related = ["integration"]
    list_filter = ["integration", "task", "outcome", "trigger"]
    date_hierarchy = "started"

    @admin.display(description="Started", ordering="started")
    def started_at(self, obj: TaskRun) -> str:
        return short_when(obj.started)

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_shown(self, obj: TaskRun) -> str:
        shown = run_shown(obj)
        return format_html(
            '<span class="feesync-flag feesync-flag-{}">{}</span>', shown.flag, shown.outcome
        )

    @admin.display(description="Took")
    def took(self, obj: TaskRun) -> str:
        if obj.finished is None:
            return "Running"
        return duration((obj.finished - obj.started).total_seconds())

    @admin.display(description="Counts")
    def counts_shown(self, obj: TaskRun) -> str:
        return counts_text(obj.counts or {})

    @admin.display(description="Errors")
    def error_shown(self, obj: TaskRun) -> str:
        return "; ".join(run_shown(obj).errors)


@admin.register(SyncedFee)
class SyncedFeeAdmin(SyncRecordAdmin):
    list_display = [
        "fee_link",
        "student_link",
        "fee_what",
        "integration_link",
        "acknowledged_version",
        "fee_version",
        "first_sent",
        "acknowledged",
    ]
    list_select_related = ["fee__student", "integration"]
    list_filter = ["integration"]

    @admin.display(description="FeeSync's version")
    def fee_version(self, obj: SyncedFee) -> int:
        return obj.fee.version

    @admin.display(description="First sent", ordering="first_sent_at")
    def first_sent(self, obj: SyncedFee) -> str:
        return short_when(obj.first_sent_at)

    @admin.display(description="Last acknowledged", ordering="acknowledged_at")
    def acknowledged(self, obj: SyncedFee) -> str:
        return short_when(obj.acknowledged_at)


class HeldStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return list(HeldMovement.Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(HeldMovement)
class HeldMovementAdmin(SyncRecordAdmin):
    """Money vendors reported for fees they do not manage, for fees clerks and district
    admins to apply or dismiss (support staff look). Its page is the movement with its
    actions; nothing is edited here."""

    list_display = [
        "held_on",
        "what",
        "fee_link",
        "student_link",
        "fee_what",
        "vendor_ref",
        "note",
        "integration_link",
        "reason",
        "status",
        "resolution",
    ]
    list_select_related = ["fee__student", "integration", "resolved_by"]
    list_filter = [HeldStatusFilter, "integration", "reason"]
    search_fields = [
        "=fee_ref",
        "=vendor_ref",
        "=student_number",
        *SyncRecordAdmin.search_fields[1:],
    ]
    search_help_text = "Search by fee reference, the vendor's id, student number or student name."

    @admin.display(description="Held", ordering="created_at")
    def held_on(self, obj: HeldMovement) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:vendors_heldmovement_change", args=[obj.pk]),
            short_when(obj.created_at),
        )

    @admin.display(description="Movement", ordering="amount")
    def what(self, obj: HeldMovement) -> str:
        by = (
            f" by {obj.get_method_display().lower()}"
            if obj.method and obj.kind in HeldMovement.METHOD_KINDS
            else ""
        )
        return f"{obj.kind.capitalize()} of ${obj.amount}{by}"

    @admin.display(description="Resolution")
    def resolution(self, obj: HeldMovement) -> str:
        if obj.resolved_at is None:
            return "—"
        who = obj.resolved_by.get_username() if obj.resolved_by else ""
        return f"{short_when(obj.resolved_at)} {who}: {obj.resolution_note}".strip()

    def get_urls(self) -> list[URLPattern]:
        return [
            # Only these actions: the admin's own "<id>/change/" and friends stay its own.
            re_path(
                r"^(?P<object_id>[0-9]+)/(?P<action>apply|credit|dismiss)/$",
                self.admin_site.admin_view(self.act_view),
                name="vendors_heldmovement_act",
            ),
            *super().get_urls(),
        ]

    def _held(self, request: HttpRequest, object_id: str) -> HeldMovement:
        if not self.has_view_permission(request):
            raise PermissionDenied
        held = (
            HeldMovement.objects.select_related("integration", "fee", "resolved_by", "entry")
            .filter(pk=object_id)
            .first()
            if object_id.isdigit()
            else None
        )
        if held is None:
            raise Http404("No such held movement.")
        return held

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        held = self._held(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": held,
            "title": f"{held.kind.capitalize()} of ${held.amount} held from "
            f"{held.integration.vendor_name}",
            "held": held,
            "may_act_on_held": may_act_on_held(request.user),
            "media": self.media,
        }
        return TemplateResponse(request, "admin/vendors/heldmovement/detail.html", context)

    def act_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        held = self._held(request, object_id)
        if action not in ("apply", "credit", "dismiss"):
            raise Http404("No such action.")
        if not may_act_on_held(request.user):
            raise PermissionDenied
        back = (
            reverse("admin:vendors_integration_dashboard", args=[held.integration_id]) + "#held"
            if request.POST.get("back") == "dashboard"
            else reverse("admin:vendors_heldmovement_change", args=[held.pk])
        )
        if request.method != "POST":
            return HttpResponseRedirect(back)
        token = _token(request.POST.get("token", ""))
        if token is None:
            messages.error(request, PAGE_OUT_OF_DATE)
            return HttpResponseRedirect(back)
        user = staff_user(request)
        money = f"{held.kind.capitalize()} {held.vendor_ref} of ${held.amount}"
        try:
            if action == "apply":
                findings.held_movement_apply(held=held, user=user, token=token)
                text = f"{money} is applied to fee {held.fee_ref}."
            elif action == "credit":
                held = findings.held_movement_credit(held=held, user=user, token=token)
                credit = student_credit(student=held.fee.student)
                text = (
                    f"{money} is held as {held.fee.student.full_name}'s credit "
                    f"(${money_text(credit)} on account now); fee {held.fee_ref} is unchanged. "
                    "Apply it to another fee or refund it from the student's page."
                )
            else:
                findings.held_movement_dismiss(
                    held=held, user=user, note=request.POST.get("note", ""), token=token
                )
                text = f"{money} is dismissed; nothing was posted."
        except findings.HeldAlreadyResolved as done:
            if done.held.resolution_token == token:
                # A double click or a resubmitted page: say what the first one did.
                messages.info(request, _already_resolved(done.held))
            else:
                messages.error(request, " ".join(done.messages))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, text)
        return HttpResponseRedirect(back)


def _token(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _already_resolved(held: HeldMovement) -> str:
    """What a repeat of the form that resolved it shows."""
    at = date_format(timezone.localtime(held.resolved_at), "H:i") if held.resolved_at else ""
    who = f" by {held.resolved_by.get_username()}" if held.resolved_by else ""
    return (
        f"This was already done at {at}{who} ({held.get_status_display().lower()}); "
        "nothing was recorded twice."
    )
