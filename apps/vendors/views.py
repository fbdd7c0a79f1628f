"""The staff pages of an integration, mounted in the admin by `IntegrationAdmin.get_urls`.

* The setup page (the integration's admin page): sections in the order a district works —
  connection, merchant accounts, categories, Test Pull / Test Push, import-after date,
  parent options, tasks — then the enable checklist. Each section is its own form, posted
  to its own URL, saved by one service, and answered with a message inside that section.
* The dashboard: what the sync engine is doing for this integration, with the actions
  staff need when something is stuck (retry, re-send, resolve, run a task now).

Who may do what (DESIGN.md): district admins everything; support staff look (secrets
masked, and the credentials form is refused outright) and run checks and tasks; fees clerks
none of it. Views are thin: parse, call one service, render or redirect with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.common.admin import staff_user
from apps.fees.models import Fee
from apps.fees.roles import can_post_money

from . import engine, files, findings, services
from .display import check_shown, duration, long_date, option_shown, plural, when
from .forms import (
    AccountMappingForm,
    CategoriesForm,
    ConnectionForm,
    DiscrepancyResolveForm,
    ImportAfterForm,
    ParentOptionsForm,
    add_service_errors,
    possessive,
)
from .jobs import TASKS, prerequisite_missing, tasks_for
from .kinds.base import Capability, CheckResult, VendorError
from .models import Discrepancy, Integration
from .registry import get_adapter_class
from .scope import Scope
from .selectors import (
    audit_trail,
    connection_summary,
    dashboard_records,
    outage_message,
    parked_message,
    scope_preview,
    state_text,
    sync_status,
    task_rows,
    vendor_still_failing,
)
from .tasks import run_integration_task

#: The setup sections, in the order a district works through them: (anchor, title).
SECTIONS: list[tuple[str, str]] = [
    ("connection", "Connection and credentials"),
    ("accounts", "Merchant accounts"),
    ("categories", "Categories"),
    ("tests", "Test Pull and Test Push"),
    ("import-after", "Import-after date"),
    ("parent-options", "Parent options"),
    ("tasks", "Tasks"),
    ("enable", "Enable"),
]
SECTION_TITLES = dict(SECTIONS)
MESSAGE_TAG = "feesync-in-"
SCOPE_CHANGED = (
    " Fees that came into scope are sent by the next “Send fees” run, or now with "
    "“Resend fees” on the dashboard."
)


# --- who may do what ---------------------------------------------------------------------------


def may_view(user: Any) -> bool:
    return bool(
        user.has_perm("vendors.view_integration") or user.has_perm("vendors.change_integration")
    )


def may_change(user: Any) -> bool:
    return bool(user.has_perm("vendors.change_integration"))


def may_edit_credentials(user: Any) -> bool:
    return may_change(user) and services.integration_user_may_see_secrets(user)


def may_run(user: Any) -> bool:
    return bool(user.has_perm("vendors.run_integration_tasks"))


def may_resolve(user: Any) -> bool:
    return bool(user.has_perm("vendors.change_discrepancy"))


def may_act_on_held(user: Any) -> bool:
    """Applying or dismissing money a vendor reported: district admins and fees clerks
    (who post money); support staff only look."""
    return bool(user.has_perm("vendors.change_heldmovement") and can_post_money(user))


def may_answer_refund(user: Any) -> bool:
    """A refund made at the vendor asks what becomes of a fee's money ("keep it owed, or
    waive the rest"): fees clerks and district admins, who handle fees, payments and
    waivers (DESIGN.md, "Who may do what"); support staff only look."""
    return can_post_money(user)


def may_waive(user: Any) -> bool:
    return may_answer_refund(user)


# --- the page frame ----------------------------------------------------------------------------


class Pages:
    """Rendering shared by the setup page and the dashboard (mixed into IntegrationAdmin)."""

    admin_site: admin.AdminSite
    opts: Any
    media: Any

    def _integration(self, request: HttpRequest, object_id: str) -> Integration:
        if not may_view(request.user):
            raise PermissionDenied
        integration = (
            Integration.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        )
        if integration is None:
            raise Http404("No such integration.")
        return integration

    def _frame(self, request: HttpRequest, integration: Integration, title: str) -> dict[str, Any]:
        top: list[Any] = []
        by_section: dict[str, list[Any]] = {}
        for message in messages.get_messages(request):
            tag = next(
                (t for t in (message.extra_tags or "").split() if t.startswith(MESSAGE_TAG)),
                None,
            )
            if tag:
                key = tag.removeprefix(MESSAGE_TAG).replace("-", "_")
                by_section.setdefault(key, []).append(message)
            else:
                top.append(message)
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "subtitle": integration.name if integration.name != integration.vendor_name else "",
            "integration": integration,
            "original": integration,
            "vendor": integration.vendor_name,
            "vendors": possessive(integration.vendor_name),
            "top_messages": top,
            "section_messages": by_section,
            "setup_url": reverse("admin:vendors_integration_change", args=[integration.pk]),
            "dashboard_url": reverse("admin:vendors_integration_dashboard", args=[integration.pk]),
            "history_url": _audit_url(integration),
            "outage": (outage := outage_message(integration=integration)),
            # Parked changes are in the outage text already while the vendor fails.
            "parked_note": "" if outage else parked_message(integration=integration),
            "state_text": state_text(integration) if integration.enabled else "",
            "credentials_problem": integration.credentials_problem,
            "may_change": may_change(request.user),
            "may_run": may_run(request.user),
            "may_edit_credentials": may_edit_credentials(request.user),
            "may_resolve": may_resolve(request.user),
            "media": self.media,
            # Keyed with underscores so that templates can look them up (…import_after).
            "section_urls": {
                s.replace("-", "_"): _section_url(integration, s)
                for s in [*SECTION_TITLES, "task-schedule", "task-times", "task-run"]
            },
        }


def _audit_url(integration: Integration) -> str:
    ct = ContentType.objects.get_for_model(Integration)
    # auditlog's own list filter ("resource_type") and a plain field lookup on object_pk.
    query = urlencode({"resource_type": ct.pk, "object_pk": integration.pk})
    return reverse("admin:auditlog_logentry_changelist") + "?" + query


def _section_url(integration: Integration, section: str) -> str:
    return reverse("admin:vendors_integration_section", args=[integration.pk, section])


def _back_to(integration: Integration, section: str) -> HttpResponseRedirect:
    url = reverse("admin:vendors_integration_change", args=[integration.pk])
    return HttpResponseRedirect(f"{url}#{section}")


def _say(request: HttpRequest, section: str, level: int, text: str) -> None:
    messages.add_message(request, level, text, extra_tags=MESSAGE_TAG + section)


_F = TypeVar("_F", bound=forms.Form)


def _bound_form(bound: dict[str, forms.Form], section: str, form_class: type[_F]) -> _F | None:
    """The form a section was posted with (shown again with its errors), if any."""
    form = bound.get(section)
    return form if isinstance(form, form_class) else None


class SetupPages(Pages):
    """The setup page and its sections (mixed into IntegrationAdmin)."""

    def setup_view(
        self,
        request: HttpRequest,
        object_id: str,
        *,
        bound: dict[str, forms.Form] | None = None,
        status: int = 200,
    ) -> HttpResponse:
        integration = self._integration(request, object_id)
        bound = bound or {}
        user = request.user
        ctx = self._frame(request, integration, f"{integration.vendor_name} setup")
        if any(form.errors for form in bound.values()):
            ctx["title_prefix"] = "Error: "  # said first by screen readers and in the tab
        ctx["sections"] = SECTIONS

        # 1. connection
        if may_edit_credentials(user):
            form = _bound_form(bound, "connection", ConnectionForm) or ConnectionForm(
                integration=integration
            )
            ctx["connection_form"] = form  # laid out by crispy (ConnectionForm.layout_items)
        ctx["connection"] = connection_summary(integration)
        stored = integration.masked_credentials()  # none when they cannot be read here
        ctx["credentials_set"] = all(
            stored.get(k) for k in get_adapter_class(integration.vendor_kind).credential_labels()
        )

        # 2. merchant accounts
        accounts = _bound_form(bound, "accounts", AccountMappingForm) or AccountMappingForm(
            integration=integration
        )
        ctx["accounts_form"] = accounts
        ctx["mapped_count"] = integration.account_mappings.count()

        # 3. categories
        categories = _bound_form(bound, "categories", CategoriesForm) or CategoriesForm(
            integration=integration
        )
        ctx["categories_form"] = categories
        ctx["categories_all"] = not integration.categories.exists()
        ctx["categories_selected"] = list(integration.categories.all())
        ctx["category_overlaps"] = services.category_overlaps(integration=integration)
        ctx["open_in_scope"] = (
            Scope.of(integration).fees().filter(status=Fee.Status.OPEN).count()
            if integration.import_after
            else None
        )

        # 4. checks
        ctx["test_pull"] = check_shown(
            integration.test_pull_ok, integration.test_pull_at, integration.test_pull_detail
        )
        ctx["test_push"] = check_shown(
            integration.test_push_ok, integration.test_push_at, integration.test_push_detail
        )

        # 5. import-after date
        adapter = get_adapter_class(integration.vendor_kind)
        if adapter.can(Capability.FILE_EXPORT):  # step 1 shows the fee file's first lines
            ctx["file_preview"] = files.fee_file_preview(integration=integration)
        ctx["tests_gate"] = adapter.requires_tests_before_import_date
        ctx["tests_passed"] = bool(integration.test_pull_ok and integration.test_push_ok)
        ctx["enabled_without_tests"] = enabled_without_tests(integration)
        preview_form = ImportAfterForm(
            request.GET if "import_after" in request.GET else None,
            initial={"import_after": integration.import_after},
            auto_id="id_preview_%s",
        )
        preview_form.error_note = ""  # a preview saves nothing
        ctx["preview_form"] = preview_form
        if preview_form.is_bound and preview_form.is_valid():
            day = preview_form.cleaned_data["import_after"]
            ctx["preview"] = {"day": day, "text": long_date(day), **scope_preview(integration, day)}
        if integration.import_after:
            ctx["current_scope"] = scope_preview(integration, integration.import_after)
        ctx["import_after_form"] = bound.get("import-after")

        # 6. parent options
        parent = _bound_form(bound, "parent-options", ParentOptionsForm) or ParentOptionsForm(
            integration=integration
        )
        ctx["parent_form"] = parent
        ctx["parent_unavailable"] = parent.unavailable
        ctx["parent_readonly"] = [
            (f.label, option_shown(getattr(integration, name))) for name, f in parent.fields.items()
        ]
        message = (
            parent.data.get("parent_message", "") if parent.is_bound else integration.parent_message
        )
        ctx["parent_message_preview"] = (message or "").strip()
        ctx["button_preview"] = (
            parent.data.get("button_text") if parent.is_bound else integration.button_text
        ) or f"Go to {integration.vendor_name}"

        # 7. tasks
        ctx["tasks"] = task_rows(integration)

        # 8. enable
        ctx["checklist"] = services.enable_checklist(integration=integration)
        ctx["disable_stops"] = disable_stops(integration)
        ctx["checklist_ok"] = all(i.ok for i in ctx["checklist"] if i.required)
        if not integration.enabled:
            ctx["duplicates"], ctx["duplicates_error"] = self._duplicates(integration)

        ctx["steps"] = self._steps(integration, ctx)
        ctx["history"] = audit_trail(integration)
        return TemplateResponse(request, "admin/vendors/integration/setup.html", ctx, status=status)

    @staticmethod
    def _duplicates(integration: Integration) -> tuple[list[Any] | None, str]:
        """Unpaid fees already at the vendor that FeeSync did not send. Asked only once
        Test Pull has passed: before that the answer would only be another failure."""
        if not integration.test_pull_ok:
            return None, ""
        if not integration.kind.can(Capability.VALIDATE):
            return [], ""  # a kind that cannot list the vendor's fees (files) has none to show
        if integration.consecutive_failures:
            # Asking a vendor that is failing would only hold the page up for its timeout.
            return None, integration.last_error or "it has not been answering lately."
        try:
            return services.vendor_unpaid_fees_that_would_duplicate(integration=integration), ""
        except VendorError as exc:
            return None, exc.message

    @staticmethod
    def _steps(integration: Integration, ctx: dict[str, Any]) -> list[tuple[str, str, str]]:
        """(anchor, title, state) for the list of steps at the top of the page."""
        done = {
            "connection": ctx["credentials_set"],
            "accounts": ctx["mapped_count"] > 0,
            "categories": True,
            "tests": ctx["tests_passed"],
            "import-after": integration.import_after is not None,
            "parent-options": None,
            "tasks": None,
            "enable": integration.enabled,
        }
        words = {True: "Done", False: "To do", None: "Optional"}
        steps = [(anchor, title, words[done[anchor]]) for anchor, title in SECTIONS]
        if ctx["enabled_without_tests"]:
            # Not "To do" on an integration that already runs: it says what it is.
            steps = [(a, t, "Skipped" if a == "tests" else w) for a, t, w in steps]
        return steps

    # --- the section forms (POST) -------------------------------------------------------------

    def section_view(self, request: HttpRequest, object_id: str, section: str) -> HttpResponse:
        integration = self._integration(request, object_id)
        handlers: dict[str, tuple[Callable[[Any], bool], Callable[..., HttpResponse]]] = {
            "connection": (may_edit_credentials, self._save_connection),
            "accounts": (may_change, self._save_accounts),
            "categories": (may_change, self._save_categories),
            "tests": (may_run, self._run_check),
            "import-after": (may_change, self._save_import_after),
            "parent-options": (may_change, self._save_parent_options),
            "task-schedule": (may_change, self._toggle_task),
            "task-times": (may_change, self._set_task_schedule),
            "task-run": (may_run, self._run_task),
            "enable": (may_change, self._set_enabled),
            "file-preview": (may_change, self._file_preview),
        }
        if section not in handlers:
            raise Http404("No such section.")
        allowed, handler = handlers[section]
        if not allowed(request.user):
            raise PermissionDenied
        if request.method != "POST":
            return _back_to(integration, section)
        return handler(request, integration)

    def _invalid(
        self, request: HttpRequest, integration: Integration, section: str, form: Any
    ) -> HttpResponse:
        title = SECTION_TITLES.get(section, section)
        messages.error(
            request,
            f"Nothing was saved: please correct what is marked in “{title}” below.",
        )
        return self.setup_view(request, str(integration.pk), bound={section: form}, status=200)

    def _save_connection(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        form = ConnectionForm(request.POST, integration=integration)
        if form.is_valid():
            try:
                retest = services.integration_update_connection(
                    integration=integration, **form.service_arguments()
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                text = "Connection settings saved."
                if retest:
                    text += (
                        " The address or credentials changed: run Test Pull and Test Push again."
                    )
                _say(request, "connection", messages.SUCCESS, text)
                return _back_to(integration, "connection")
        form.ask_secrets_again()
        return self._invalid(request, integration, "connection", form)

    def _file_preview(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        """The fee file's first lines from the connection form's unsaved layout values
        (posted by static/feesync/layout.js as staff change them); saves nothing. JSON:
        `ok`, `text`, `fees` (lines of fees shown), `byte_order_mark`, or `errors`
        ({setting: {"label", "message"}}, status 400)."""
        kind = integration.kind
        if not kind.can(Capability.FILE_EXPORT):
            raise Http404("This integration writes no files.")
        # A setting absent from the post is an unticked box or an emptied field.
        typed = {name: request.POST.get(name) for name in kind.file_preview_options}
        options, errors = services.connection_options_clean(integration=integration, options=typed)
        if errors:
            declared = kind.settings_for(step="connection", secret=False)
            return JsonResponse(
                {
                    "ok": False,
                    "errors": {
                        name: {
                            "label": str(declared[name].field.label) if name in declared else name,
                            "message": message,
                        }
                        for name, message in errors.items()
                    },
                },
                status=400,
            )
        text, fees = files.fee_file_sample(integration=integration, options=options)
        return JsonResponse(
            {
                "ok": True,
                "text": text,
                "fees": fees,
                "byte_order_mark": options.get("encoding") == "utf-8-sig",
            }
        )

    def _save_accounts(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        form = AccountMappingForm(request.POST, integration=integration)
        if form.is_valid():
            try:
                counts = services.integration_set_account_mappings(
                    integration=integration, mappings=form.mappings()
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                mapped = integration.account_mappings.count()
                changes = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no changes"
                _say(
                    request,
                    "accounts",
                    messages.SUCCESS,
                    f"Merchant accounts saved ({changes}): "
                    f"{plural(mapped, 'account')} used with {integration.vendor_name}.",
                )
                return _back_to(integration, "accounts")
        return self._invalid(request, integration, "accounts", form)

    def _save_categories(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        form = CategoriesForm(request.POST, integration=integration)
        if form.is_valid():
            chosen = form.cleaned_data["categories"]
            try:
                services.integration_set_categories(integration=integration, categories=chosen)
            except ValidationError as exc:
                add_service_errors(form, exc)
                return self._invalid(request, integration, "categories", form)
            if chosen:
                text = f"Categories saved: {plural(len(chosen), 'category', 'categories')} sent."
            else:
                text = "Categories saved: every category is sent, including ones added later."
            if integration.enabled:
                text += SCOPE_CHANGED
            _say(request, "categories", messages.SUCCESS, text)
            return _back_to(integration, "categories")
        return self._invalid(request, integration, "categories", form)

    def _run_check(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        check = request.POST.get("check")
        if check not in ("pull", "push"):
            raise Http404("No such check.")
        result: CheckResult = services.integration_run_check(integration=integration, check=check)
        name = "Test Pull" if check == "pull" else "Test Push"
        verdict = "passed" if result.ok else "failed"
        _say(
            request,
            "tests",
            messages.SUCCESS if result.ok else messages.ERROR,
            f"{name} {verdict} in {duration(result.elapsed_ms / 1000)}: {result.answer}",
        )
        return _back_to(integration, "tests")

    def _save_import_after(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        form = ImportAfterForm(request.POST)
        if form.is_valid():
            day = form.cleaned_data["import_after"]
            try:
                services.integration_set_import_after(integration=integration, import_after=day)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                preview = scope_preview(integration, day)
                _say(
                    request,
                    "import-after",
                    messages.SUCCESS,
                    f"Import-after date set to {long_date(day)}: "
                    f"{plural(preview['sent'], 'fee')} in scope "
                    f"({preview['sent_open']:,} open). Earlier fees will never be sent."
                    + (SCOPE_CHANGED if integration.enabled else ""),
                )
                return _back_to(integration, "import-after")
        return self._invalid(request, integration, "import-after", form)

    def _save_parent_options(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        form = ParentOptionsForm(request.POST, integration=integration)
        if "preview" in request.POST:
            form.is_valid()  # show field errors, if any, with the preview; save nothing
            _say(
                request,
                "parent-options",
                messages.INFO,
                "Preview only: nothing was saved. Save the parent options to keep it.",
            )
            return self.setup_view(request, str(integration.pk), bound={"parent-options": form})
        if form.is_valid():
            try:
                services.integration_update_parent_options(
                    integration=integration, **form.service_arguments()
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                _say(request, "parent-options", messages.SUCCESS, "Parent options saved.")
                return _back_to(integration, "parent-options")
        return self._invalid(request, integration, "parent-options", form)

    def _task_name(self, request: HttpRequest, integration: Integration) -> Any:
        name = request.POST.get("task", "")
        spec = TASKS.get(name)
        if spec is None or spec not in tasks_for(integration):
            raise Http404("No such task.")
        return spec

    def _toggle_task(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        spec = self._task_name(request, integration)
        enabled = request.POST.get("enabled") == "1"
        try:
            services.integration_task_set_enabled(
                integration=integration, task=spec.name, enabled=enabled
            )
        except ValidationError as exc:
            _say(request, "tasks", messages.ERROR, " ".join(exc.messages))
            return _back_to(integration, "tasks")
        _say(
            request,
            "tasks",
            messages.SUCCESS,
            f"“{spec.label}” is switched {'on' if enabled else 'off'}"
            + ("." if enabled else "; it still runs when you press Run now."),
        )
        return _back_to(integration, "tasks")

    def _set_task_schedule(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        spec = self._task_name(request, integration)
        try:
            words = services.integration_task_set_schedule(
                integration=integration, task=spec.name, text=request.POST.get("schedule", "")
            )
        except ValidationError as exc:
            _say(request, "tasks", messages.ERROR, " ".join(exc.messages) + " Nothing changed.")
            return _back_to(integration, "tasks")
        _say(request, "tasks", messages.SUCCESS, f"“{spec.label}” now runs: {words}.")
        return _back_to(integration, "tasks")

    def _run_task(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        spec = self._task_name(request, integration)
        back_to_dashboard = request.POST.get("back") == "dashboard"
        section = "tasks"
        missing = prerequisite_missing(integration, spec.name)
        if not integration.enabled:
            text = f"“{spec.label}” did not run: enable the integration first."
            level = messages.ERROR
        elif missing:
            text = f"“{spec.label}” did not run. {missing}"
            level = messages.ERROR
        else:
            try:
                queue_task(integration, spec.name)
            except Exception as exc:  # the broker being down must not fail the page
                text, level = f"“{spec.label}” could not be started: {exc}", messages.ERROR
            else:
                text = f"“{spec.label}” has started. Its run appears below when it finishes."
                level = messages.SUCCESS
        if back_to_dashboard:
            messages.add_message(request, level, text)
            return HttpResponseRedirect(
                reverse("admin:vendors_integration_dashboard", args=[integration.pk]) + "#tasks"
            )
        _say(request, section, level, text)
        return _back_to(integration, section)

    def _set_enabled(self, request: HttpRequest, integration: Integration) -> HttpResponse:
        enabled = request.POST.get("enabled") == "1"
        if not enabled and integration.enabled and request.POST.get("confirm") != "yes":
            # Disabling stops the vendor's whole traffic: only once staff said they mean it.
            _say(
                request,
                "enable",
                messages.ERROR,
                f"{integration.vendor_name} is still enabled: tick “Yes, disable "
                f"{integration.vendor_name}” to confirm.",
            )
            return _back_to(integration, "enable")
        try:
            services.integration_set_enabled(integration=integration, enabled=enabled)
        except ValidationError as exc:
            _say(request, "enable", messages.ERROR, " ".join(exc.messages))
        else:
            if enabled:
                _say(
                    request,
                    "enable",
                    messages.SUCCESS,
                    f"{integration.vendor_name} is enabled. Every fee in scope is being sent; "
                    "follow it on the dashboard.",
                )
            else:
                _say(
                    request,
                    "enable",
                    messages.SUCCESS,
                    f"{integration.vendor_name} is disabled: nothing is sent or pulled until "
                    "it is enabled again. Changes made meanwhile are sent then.",
                )
        return _back_to(integration, "enable")


def disable_stops(integration: Integration) -> list[str]:
    """What disabling the integration stops, in words, for the confirmation."""
    vendor = integration.vendor_name
    tasks = [t.label for t in tasks_for(integration)]
    stops = [
        f"No fee is sent to {vendor}: changes wait, and are sent when it is enabled again.",
        f"No payment is pulled from {vendor}.",
        f"Parents no longer see {vendor} in the portal, nor its pay button.",
    ]
    if tasks:
        stops.append("Its scheduled tasks stop: " + ", ".join(tasks) + ".")
    return stops


def enabled_without_tests(integration: Integration) -> str:
    """For an enabled integration whose checks have not both passed (the demo's, enabled
    when it was made; or one whose connection changed since): say so, with when it was
    enabled, rather than show tests still "to do" on something already running."""
    if not integration.enabled or (integration.test_pull_ok and integration.test_push_ok):
        return ""
    since = when(integration.enabled_at or integration.created_at)
    failed = [
        name
        for name, ok in (
            ("Test Pull", integration.test_pull_ok),
            ("Test Push", integration.test_push_ok),
        )
        if ok is False
    ]
    if failed:
        return (
            f"Enabled on {since}; {' and '.join(failed)} failed since: fees and payments may "
            f"not be getting through to {integration.vendor_name}. See the result below."
        )
    return (
        f"Enabled on {since} without tests. Run Test Pull and Test Push to confirm the connection."
    )


def queue_task(integration: Integration, task: str) -> None:
    """Run one task in the background, as "Run now" (the worker records the run)."""
    run_integration_task.delay(integration.pk, task, trigger="manual")


# --- the dashboard -----------------------------------------------------------------------------


def changelist(model: str, **filters: Any) -> str:
    return reverse(f"admin:vendors_{model}_changelist") + "?" + urlencode(filters)


class DashboardPages(Pages):
    def dashboard_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        integration = self._integration(request, object_id)
        ctx = self._frame(request, integration, f"{integration.vendor_name} dashboard")
        status = sync_status(integration=integration)
        records = dashboard_records(integration=integration)
        in_scope, acked = status["fees_in_scope"], status["fees_acknowledged"]
        percent = 100 if not in_scope else min(100, int(acked * 100 / in_scope))
        running = records["running"]
        waiting = status["changes_waiting"]
        pk = integration.pk
        oldest = status["oldest_waiting"]
        refresh_off = request.GET.get("refresh") == "off"
        ctx.update(
            {
                "status": status,
                "percent": percent,
                "in_scope": in_scope,
                "acknowledged": min(acked, in_scope) if in_scope else acked,
                "waiting": waiting,
                "oldest_waiting": when(datetime.fromisoformat(oldest)) if oldest else "",
                "parked": status["changes_parked"],
                "parked_items": records["parked_items"],
                "retry_warning": vendor_still_failing(integration=integration)
                if status["changes_parked"]
                else "",
                "running": running,
                "refresh": (waiting > 0 or running) and not refresh_off,
                "refresh_seconds": 30 if ctx["outage"] else 5,
                "refresh_off": refresh_off,
                "tasks": task_rows(integration, runs=5),
                "discrepancies": records["discrepancies"],
                "unmatched": records["unmatched"],
                "unmatched_count": records["unmatched_count"],
                "held": records["held"],
                "held_count": records["held_count"],
                "may_act_on_held": may_act_on_held(request.user),
                "may_waive": may_waive(request.user),
                "may_answer_refund": may_answer_refund(request.user),
                "links": {
                    "in_scope": self._fees_in_scope_url(integration),
                    "acknowledged": changelist("syncedfee", integration__id__exact=pk),
                    "waiting": changelist("outboxitem", integration__id__exact=pk, state="pending"),
                    "parked": changelist("outboxitem", integration__id__exact=pk, state="parked"),
                    "payments": reverse("admin:fees_ledgerentry_changelist")
                    + "?"
                    + urlencode({"external_source": integration.external_source}),
                    "discrepancies": changelist(
                        "discrepancy", integration__id__exact=pk, open="yes"
                    ),
                    "unmatched": changelist(
                        "discrepancy",
                        integration__id__exact=pk,
                        open="yes",
                        kind="unmatched_payment",
                    ),
                    "runs": changelist("taskrun", integration__id__exact=pk),
                    "held": changelist("heldmovement", integration__id__exact=pk, status="open"),
                },
                "resolve_form": DiscrepancyResolveForm(auto_id=False),
                "send_fees_label": TASKS["send-fees"].label,
                "kind_dashboard_template": integration.kind.dashboard_template,
                "kind": integration.kind.dashboard_context(integration),
            }
        )
        return TemplateResponse(request, "admin/vendors/integration/dashboard.html", ctx)

    @staticmethod
    def _fees_in_scope_url(integration: Integration) -> str:
        filters = Scope.of(integration).changelist_filters()
        if not filters:
            return ""
        return reverse("admin:fees_fee_changelist") + "?" + urlencode(filters)

    def dashboard_action_view(
        self, request: HttpRequest, object_id: str, action: str
    ) -> HttpResponse:
        integration = self._integration(request, object_id)
        if action not in ("retry", "resend"):
            raise Http404("No such action.")
        if not may_run(request.user):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(self._dashboard(integration))
        if action == "retry":
            ids: list[int] | None = None
            if request.POST.get("which") != "all":
                ids = [int(i) for i in request.POST.getlist("item") if i.isdigit()]
                if not ids:
                    messages.error(request, "Tick the parked changes to retry, or retry all.")
                    return HttpResponseRedirect(self._dashboard(integration, "parked"))
            still_failing = vendor_still_failing(integration=integration)
            n = engine.outbox_retry_parked(
                integration=integration, item_ids=ids, by_id=request.user.pk
            )
            if n and still_failing:
                messages.warning(
                    request, f"{plural(n, 'parked change')} will be sent again now. {still_failing}"
                )
            else:
                messages.success(
                    request,
                    f"{plural(n, 'parked change')} will be sent again now."
                    if n
                    else "Nothing was parked any more.",
                )
            return HttpResponseRedirect(self._dashboard(integration, "parked"))
        # resend: the send-fees task, in the background
        if not integration.enabled:
            messages.error(request, "Enable the integration before sending fees.")
        else:
            try:
                queue_task(integration, "send-fees")
            except Exception as exc:  # the broker being down must not fail the page
                messages.error(request, f"Sending could not be started: {exc}")
            else:
                messages.success(
                    request,
                    "Every fee in scope that the vendor does not hold yet is being sent. "
                    "The progress bar below follows it.",
                )
        return HttpResponseRedirect(self._dashboard(integration, "progress"))

    def discrepancy_view(
        self, request: HttpRequest, object_id: str, discrepancy_id: str, action: str
    ) -> HttpResponse:
        if action in ("keep-owed", "waive-rest"):
            # Answered from the dashboard or from the fee's page: fees clerks answer these
            # too, and they do not see the integration's pages.
            return self._refund_answer(request, object_id, discrepancy_id, action)
        integration = self._integration(request, object_id)
        discrepancy = Discrepancy.objects.filter(pk=discrepancy_id, integration=integration).first()
        actions: dict[str, Callable[[Any], bool]] = {
            "resend": may_run,
            "resolve": may_resolve,
        }
        if discrepancy is None or action not in actions:
            raise Http404("No such finding.")
        if not actions[action](request.user):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(self._dashboard(integration, "discrepancies"))
        anchor = (
            "unmatched"
            if discrepancy.kind == Discrepancy.Kind.UNMATCHED_PAYMENT
            else "discrepancies"
        )
        if action == "resend":
            try:
                services.discrepancy_resend(discrepancy=discrepancy)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(
                    request,
                    f"Fee {discrepancy.fee_ref} will be sent to {integration.vendor_name} "
                    "again. Mark the finding resolved once the vendor has it right.",
                )
            return HttpResponseRedirect(self._dashboard(integration, anchor))
        form = DiscrepancyResolveForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        try:
            services.discrepancy_resolve(
                discrepancy=discrepancy, note=note, user=staff_user(request)
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"“{discrepancy.get_kind_display()}” "
                f"({discrepancy.fee_ref or discrepancy.vendor_ref}) marked resolved.",
            )
        return HttpResponseRedirect(self._dashboard(integration, anchor))

    def _refund_answer(
        self, request: HttpRequest, object_id: str, discrepancy_id: str, action: str
    ) -> HttpResponse:
        """A refund at the vendor: keep the fee owed, or waive the rest (one click each)."""
        if not may_answer_refund(request.user):
            raise PermissionDenied
        discrepancy = (
            Discrepancy.objects.select_related("integration")
            .filter(
                pk=discrepancy_id,
                integration_id=object_id,
                kind=Discrepancy.Kind.REFUNDED_AT_VENDOR,
            )
            .first()
            if object_id.isdigit()
            else None
        )
        if discrepancy is None:
            raise Http404("No such finding.")
        integration = discrepancy.integration
        back = (
            reverse("admin:fees_fee_change", args=[discrepancy.fee_id]) + "#refund-findings"
            if request.POST.get("back") == "fee" and discrepancy.fee_id
            else self._dashboard(integration, "discrepancies")
        )
        if request.method != "POST":
            return HttpResponseRedirect(back)
        try:
            if action == "keep-owed":
                findings.refund_keep_owed(discrepancy=discrepancy, user=staff_user(request))
                text = f"Fee {discrepancy.fee_ref} stays owed after the refund."
            else:
                waiver = findings.refund_waive_rest(
                    discrepancy=discrepancy, user=staff_user(request)
                )
                text = (
                    f"The rest of fee {discrepancy.fee_ref} (${waiver.amount}) is waived "
                    f"after the refund at {integration.vendor_name}."
                )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, text)
        return HttpResponseRedirect(back)

    @staticmethod
    def _dashboard(integration: Integration, anchor: str = "") -> str:
        url = reverse("admin:vendors_integration_dashboard", args=[integration.pk])
        return f"{url}#{anchor}" if anchor else url
