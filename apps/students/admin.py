"""Students, guardians, schools, activities and saved student lists on the staff site.

A student's page shows their fees and what they owe. Joining an activity always goes
through `activity_join` (the "Add members" page of an activity, or the "Add to an activity"
action on the student list) so that the activity's fees follow the student; memberships are
never edited as a plain many-to-many field.
"""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, DecimalField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.common.admin import (
    ActionPageMixin,
    FeeSyncMedia,
    NoAddOrChangeMixin,
    NotFoundMixin,
    ReadOnlyMixin,
    admin_url,
    short_date,
    staff_user,
)
from apps.fees.forms import CreditApplyForm, CreditRefundForm, dollars
from apps.fees.models import MONEY, ZERO, Fee, FeeAssignment, StudentCredit
from apps.fees.once import AlreadyRecorded, already_applied_message, post_once, staff_origin
from apps.fees.roles import can_post_money
from apps.fees.selectors import (
    ledger_card,
    manual_applications,
    payment_plans,
    student_balance,
)
from apps.fees.services import (
    CreditAlreadyApplied,
    LedgerError,
    Origin,
    credit_apply,
    credit_refund,
    student_credit,
)
from apps.fees.services.credit import manual_apply_clear
from apps.portal.admin import (
    StudentDocumentsInline,
    StudentDocumentUploadInline,
    documents_formset_save,
)
from apps.portal.models import StudentDocument
from apps.vendors import freshness

from .models import Activity, ActivityMembership, Guardian, School, Student, StudentList
from .selectors import student_list_students
from .services import activity_join

# --- joining activities: always through activity_join ---------------------------------------


def may_join_students(user: User | AnonymousUser) -> bool:
    """Joining may charge the activity's fees, so it takes the right to post money too."""
    return bool(user.has_perm("students.add_activitymembership")) and can_post_money(user)


def join_activity(request: HttpRequest, *, activity: Activity, students: list[Student]) -> str:
    """Add students to an activity, all or none; returns the message for the clerk."""
    already = set(
        ActivityMembership.objects.filter(activity=activity, student__in=students).values_list(
            "student_id", flat=True
        )
    )
    # Staff pages only run for a signed-in user; an anonymous one would be recorded as nobody
    # (as Origin.entry_fields already does for a user without a pk).
    user = request.user if isinstance(request.user, AbstractBaseUser) else None
    origin = Origin(user=user)
    charged = 0
    with transaction.atomic():
        for student in students:
            charged += activity_join(student=student, activity=activity, origin=origin)
    joined = len(students) - len(already)
    parts = [f"{joined} student{'s' if joined != 1 else ''} joined {activity.name}"]
    parts.append(f"{charged} activity fee{'s' if charged != 1 else ''} charged")
    message = "; ".join(parts) + "."
    if already:
        message += f" {len(already)} {'was' if len(already) == 1 else 'were'} already a member."
    return message


class ActivityMembersForm(forms.Form):
    students = forms.ModelMultipleChoiceField(
        queryset=Student.objects.all(),
        widget=AutocompleteSelectMultiple(Activity._meta.get_field("members"), admin.site),
        help_text="Type a name or student number; add as many as you like. Fees assigned "
        "to this activity's lists are charged to each new member.",
    )

    def __init__(self, *args: Any, activity: Activity, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)


class ActivityPickForm(forms.Form):
    activity = forms.ModelChoiceField(
        queryset=Activity.objects.select_related("school"),
        help_text="The sport or club the selected students join. Fees assigned to its "
        "lists are charged to each new member.",
    )


# --- students -----------------------------------------------------------------------------


class FeeInline(ReadOnlyMixin, admin.TabularInline[Fee, Student]):
    """The student's fees, read-only: money changes on each fee's own page."""

    template = "admin/common/tabular_cards.html"  # rows become cards on a phone
    empty_text = "No fees yet."
    model = Fee
    fk_name = "student"
    extra = 0
    can_delete = False
    verbose_name = "fee"
    verbose_name_plural = "Fees"
    fields = readonly_fields = (
        "fee_link",
        "description",
        "category",
        "amount",
        "balance",
        "status",
        "fee_date",
        "due_date",
    )
    ordering = ["-fee_date", "-id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Fee]:
        return super().get_queryset(request).select_related("category")

    @admin.display(description="Fee")
    def fee_link(self, obj: Fee) -> str:
        return format_html('<a href="{}">{}</a>', admin_url(obj), obj.reference)


class GuardianInline(admin.TabularInline):
    template = "admin/common/tabular_cards.html"  # rows become cards on a phone
    model = Guardian.students.through
    extra = 0
    autocomplete_fields = ["guardian"]
    verbose_name = "guardian"
    verbose_name_plural = "Guardians (parent-portal logins see this student's fees)"


class MembershipInline(NoAddOrChangeMixin, admin.TabularInline[ActivityMembership, Student]):
    """Memberships are shown, never added here: joining goes through `activity_join`."""

    template = "admin/common/tabular_cards.html"  # rows become cards on a phone
    empty_text = "Not in any activity yet."
    model = ActivityMembership
    extra = 0
    fields = readonly_fields = ("activity", "joined_on")
    verbose_name = "activity"
    verbose_name_plural = "Activities"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ActivityMembership]:
        return super().get_queryset(request).select_related("activity", "student")


class StudentForm(forms.ModelForm[Student]):
    class Meta:
        model = Student
        fields = [
            "student_number",
            "first_name",
            "last_name",
            "grade",
            "school",
            "active",
            "enrollment_date",
        ]
        help_texts = {
            "first_name": "As in the student information system.",
            "last_name": "As in the student information system.",
            "school": "The school the student attends.",
            "enrollment_date": "The date the student enrolled in the district.",
        }


#: The parts of a student's page that show money, swapped in when a background pull lands:
#: the Fees inline, the owed and credit figures, the ledger card.
STUDENT_MONEY_PARTS = (
    "#fees-group, .field-total_owed .readonly, .field-credit_on_account .readonly, #ledger-card"
)


def _owed_subquery() -> Subquery:
    return Subquery(
        Fee.objects.filter(student=OuterRef("pk"))
        .order_by()
        .values("student")
        .annotate(s=Sum("balance"))
        .values("s"),
        output_field=DecimalField(**MONEY),
    )


@admin.register(Student)
class StudentAdmin(ActionPageMixin, NotFoundMixin, admin.ModelAdmin[Student]):
    Media = FeeSyncMedia
    form = StudentForm
    change_form_template = "admin/students/student/change_form.html"
    list_display = ["student_number", "name", "grade", "school", "active", "owed"]
    list_display_links = ["student_number", "name"]
    list_select_related = ["school"]
    list_filter = ["school", "grade", "active"]
    search_fields = ["^student_number", "first_name", "last_name"]
    search_help_text = "Search by name or student number."
    list_per_page = 50
    show_full_result_count = False
    actions = ["add_to_activity"]
    inlines = [
        FeeInline,
        GuardianInline,
        MembershipInline,
        StudentDocumentsInline,
        StudentDocumentUploadInline,
    ]
    readonly_fields = ["total_owed", "credit_on_account"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "student_number",
                    "first_name",
                    "last_name",
                    "grade",
                    "school",
                    "active",
                    "enrollment_date",
                ]
            },
        ),
        ("What the student owes", {"fields": ["total_owed", "credit_on_account"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Student]:
        return super().get_queryset(request).annotate(owed_total=Coalesce(_owed_subquery(), ZERO))

    @admin.display(description="Name", ordering="last_name")
    def name(self, obj: Student) -> str:
        return f"{obj.last_name}, {obj.first_name}"

    @admin.display(description="Owed", ordering="owed_total")
    def owed(self, obj: Student) -> str:
        return dollars(obj.owed_total)  # type: ignore[attr-defined]

    @admin.display(description="Total owed")
    def total_owed(self, obj: Student) -> str:
        if obj.pk is None:
            return dollars(ZERO)
        return dollars(student_balance(student=obj))

    @admin.display(description="Credit on account")
    def credit_on_account(self, obj: Student) -> str:
        account = StudentCredit.objects.filter(student_id=obj.pk).first() if obj.pk else None
        if account is None or account.amount <= 0:
            return dollars(ZERO)
        return format_html(
            '{} <span class="feesync-quiet">since {}</span><div class="feesync-note">{}</div>',
            dollars(account.amount),
            short_date(timezone.localtime(account.since)) if account.since else "—",
            "Paid at a vendor beyond what its fee owed. Apply it to a fee or refund it.",
        )

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        return self.inlines if obj is not None else [GuardianInline]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # New documents go through the service (who shared it, the size check), not a bare
        # save of the inline's rows.
        if formset.model is StudentDocument:
            saved = documents_formset_save(request, formset, form.instance)
            if saved:
                messages.success(
                    request,
                    f"{saved} document{'s' if saved != 1 else ''} shared with "
                    f"{form.instance.first_name}'s guardians.",
                )
            return
        super().save_formset(request, form, formset, change)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        # get_object is None for an id that is not a number as well as for one that names
        # nobody; the admin's own change_view then answers 404 (NotFoundMixin).
        student = self.get_object(request, unquote(object_id))
        if student is None:
            return super().change_view(request, object_id, form_url, extra)
        if request.user.has_perm("fees.add_fee") and can_post_money(request.user):
            extra["add_fee_url"] = reverse("admin:fees_fee_add") + f"?student={student.pk}"
        # A copy of the page fetched by the page itself (static/feesync/freshness.js, when a
        # background pull landed) does not ask the vendors again.
        if request.method == "GET" and request.headers.get("X-FeeSync-Refresh") != "payments":
            background = self._bring_in_vendor_payments(request, student)
            extra["watch"] = freshness.watch_context(
                url=reverse("admin:students_student_money_changed", args=[student.pk]),
                since=time.time(),  # what the pull brought in is on the page being built
                until=freshness.watch_until(background),
                refresh=STUDENT_MONEY_PARTS,
            )
        extra["ledger_card"] = ledger_card(student=student)
        extra["payment_plans"] = payment_plans(student=student)
        extra["manual_apply_url"] = reverse(
            "admin:students_student_manual_apply", args=[student.pk]
        )
        if can_post_money(request.user):
            if student_credit(student=student) > 0:
                extra["credit_actions"] = [
                    (reverse(f"admin:students_student_credit_{name}", args=[student.pk]), label)
                    for name, label in [("apply", "Apply to a fee"), ("refund", "Refund")]
                ]
        return super().change_view(request, object_id, form_url, extra)

    def manual_apply_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The payments and charges applied by hand (a partner's explicit application, or a
        clerk's): automatic application leaves them alone until staff give them back."""
        student = self._student_or_none(object_id)
        if student is None or not self.has_view_permission(request, student):
            raise Http404("No such student.")
        if request.method == "POST":
            if not can_post_money(request.user):
                raise PermissionDenied
            entry_id = request.POST.get("entry", "")
            flag = (
                manual_applications(student=student)
                .filter(entry_id=int(entry_id) if entry_id.isdigit() else 0)
                .first()
            )
            if flag is None:
                messages.error(request, "That entry is not applied by hand (any more).")
            else:
                manual_apply_clear(entry=flag.entry)
                messages.success(
                    request,
                    f"Entry {flag.entry_id} is back under automatic application.",
                )
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Applied by hand: {student.first_name} {student.last_name}",
            "student": student,
            "flags": manual_applications(student=student),
            "may_change": can_post_money(request.user),
            "student_url": reverse("admin:students_student_change", args=[student.pk]),
        }
        return TemplateResponse(request, "admin/students/student/manual_apply.html", context)

    def _student_or_none(self, object_id: str) -> Student | None:
        pk = unquote(object_id)
        return Student.objects.filter(pk=pk).first() if str(pk).isdigit() else None

    # --- the student's credit: credit_apply, credit_refund ---

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/payments-changed/",
                view(self.money_changed_view),
                name="students_student_money_changed",
            ),
            path(
                "<path:object_id>/manual-apply/",
                view(self.manual_apply_view),
                name="students_student_manual_apply",
            ),
            path(
                "<path:object_id>/credit/apply/",
                view(self.credit_apply_view),
                name="students_student_credit_apply",
            ),
            path(
                "<path:object_id>/credit/refund/",
                view(self.credit_refund_view),
                name="students_student_credit_refund",
            ),
            *super().get_urls(),
        ]

    def _credit_page(
        self,
        request: HttpRequest,
        object_id: str,
        *,
        form_class: Any,
        perform: Any,
        title: str,
        submit_label: str,
        intro: str,
    ) -> HttpResponse:
        if not (can_post_money(request.user) and self.has_view_permission(request)):
            raise PermissionDenied
        student = self._student_or_none(object_id)
        if student is None:
            raise Http404("No such student.")
        credit = student_credit(student=student)
        form = form_class(
            request.POST if request.method == "POST" else None, student=student, credit=credit
        )
        if request.method == "POST" and form.is_valid():
            try:
                message = perform(student, form.cleaned_data)
            except LedgerError as exc:
                form.add_error(None, exc)
                credit = student_credit(student=student)
            except (AlreadyRecorded, CreditAlreadyApplied) as repeat:
                # A double click or a resubmitted page: say what the first one did.
                messages.info(
                    request,
                    str(repeat)
                    if isinstance(repeat, AlreadyRecorded)
                    else already_applied_message(repeat.application),
                )
                return HttpResponseRedirect(admin_url(student))
            else:
                self.log_change(request, student, message)
                messages.success(request, message)
                return HttpResponseRedirect(admin_url(student))
        return self.render_action_page(
            request,
            form=form,
            obj=student,
            title=title,
            submit_label=submit_label,
            cancel_url=admin_url(student),
            intro=intro,
            summary=[
                ("Student", f"{student.full_name} ({student.student_number})"),
                ("Credit on account", dollars(credit)),
                ("Owed on open fees", dollars(student_balance(student=student))),
            ],
        )

    def credit_apply_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(student: Student, data: dict[str, Any]) -> str:
            fee = data["fee"]
            # Recorded once per form token: `credit_apply` checks it under the fee's lock.
            applied = credit_apply(
                student=student,
                fee=fee,
                amount=data["amount"],
                origin=staff_origin(staff_user(request), data["token"]),
            )
            fee.refresh_from_db()
            left = student_credit(student=student)
            return (
                f"{dollars(applied)} of credit applied to fee {fee.reference}; "
                f"{dollars(fee.balance)} is still owed on it and {dollars(left)} of credit "
                "is left."
            )

        return self._credit_page(
            request,
            object_id,
            form_class=CreditApplyForm,
            perform=perform,
            title="Apply credit to a fee",
            submit_label="Apply the credit",
            intro="The credit pays (part of) another open fee of this student; the payment "
            "vendors are told the fee's new balance.",
        )

    def credit_refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(student: Student, data: dict[str, Any]) -> str:
            # The credit row is what a refund of credit changes: the second of two identical
            # submissions waits on it, then finds the first refund by its token.
            refunds = post_once(
                token=data["token"],
                lock=StudentCredit.objects.filter(student=student),
                perform=lambda: credit_refund(
                    student=student,
                    amount=data["amount"],
                    reason=data["reason"],
                    method=data["method"],
                    check_number=data["check_number"],
                    origin=staff_origin(staff_user(request), data["token"]),
                ),
            )
            total = sum((r.amount for r in refunds), ZERO)
            left = student_credit(student=student)
            return (
                f"Refund of {dollars(total)} of credit recorded; {dollars(left)} of credit is left."
            )

        return self._credit_page(
            request,
            object_id,
            form_class=CreditRefundForm,
            perform=perform,
            title="Refund credit",
            submit_label="Record the refund",
            intro="Record credit paid back to the family. No fee changes.",
        )

    def _bring_in_vendor_payments(self, request: HttpRequest, student: Student) -> list[Any]:
        """Opening a student's fees brings in what was paid at the vendors for that student
        (a short time budget; the page renders with a message if a vendor is down). Returns
        the integrations still being pulled in the background, which the page watches."""
        from apps.vendors.jobs import student_page_pull

        pulled = student_page_pull(student=student)
        for level, message in pulled.notes:
            messages.add_message(request, level, message)
        return pulled.background

    def money_changed_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """When the student's money last changed, which the student's page compares with the
        time it was built from while a background pull may land (apps/vendors/freshness.py).
        JSON: {"changed_at": Unix time or null}."""
        student = self._student_or_none(object_id)
        if student is None or not self.has_view_permission(request, student):
            raise Http404("No such student.")
        changed = freshness.money_changed_at(student_ids=[student.pk])
        response = JsonResponse({"changed_at": changed})
        response["Cache-Control"] = "no-store"
        return response

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not may_join_students(request.user):
            actions.pop("add_to_activity", None)
        return actions

    @admin.action(description="Add the selected students to an activity…")
    def add_to_activity(
        self, request: HttpRequest, queryset: QuerySet[Student]
    ) -> HttpResponse | None:
        if not may_join_students(request.user):
            raise PermissionDenied
        students = list(queryset.select_related("school"))
        form = ActivityPickForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            activity = form.cleaned_data["activity"]
            try:
                message = join_activity(request, activity=activity, students=students)
            except LedgerError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, message)
                return None
        names = ", ".join(s.full_name for s in students[:10])
        more = f" and {len(students) - 10} more" if len(students) > 10 else ""
        return self.render_action_page(
            request,
            form=form,
            title="Add students to an activity",
            submit_label="Add them",
            cancel_url=reverse("admin:students_student_changelist"),
            intro=f"{len(students)} selected: {names}{more}.",
            hidden_inputs=[("action", "add_to_activity"), ("apply", "1")]
            + [(admin.helpers.ACTION_CHECKBOX_NAME, s.pk) for s in students],
        )


# --- guardians, schools ---------------------------------------------------------------------


class GuardianForm(forms.ModelForm[Guardian]):
    class Meta:
        model = Guardian
        fields = ["first_name", "last_name", "email", "phone", "address", "user", "students"]
        help_texts = {
            "user": "Their parent-portal login. Set by a district admin.",
            "first_name": "The guardian's first name.",
            "last_name": "The guardian's last name.",
            "email": "Where receipts and notices go.",
            "phone": "A number the office can call.",
            "address": "Mailing address.",
            "students": "The children this guardian sees in the parent portal.",
        }


class HasEmailFilter(admin.SimpleListFilter):
    """Guardians without an email get no portal login: the office reaches them otherwise."""

    title = "email"
    parameter_name = "has_email"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Has an email"), ("no", "No email (no portal login)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Guardian]) -> QuerySet[Guardian]:
        if self.value() == "yes":
            return queryset.exclude(email="")
        if self.value() == "no":
            return queryset.filter(email="")
        return queryset


@admin.register(Guardian)
class GuardianAdmin(NotFoundMixin, admin.ModelAdmin[Guardian]):
    form = GuardianForm
    list_filter = [HasEmailFilter]
    list_display = ["last_name", "first_name", "email", "phone", "children"]
    search_fields = ["last_name", "first_name", "email"]
    search_help_text = "Search by name or email."
    autocomplete_fields = ["students", "user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Guardian]:
        return super().get_queryset(request).annotate(n_children=Count("students"))

    @admin.display(description="Children", ordering="n_children")
    def children(self, obj: Guardian) -> int:
        return obj.n_children  # type: ignore[attr-defined]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Only those who manage logins may link one; a clerk sees it.
        if request.user.has_perm("auth.change_user"):
            return []
        return ["user"]


class SchoolForm(forms.ModelForm[School]):
    class Meta:
        model = School
        fields = ["code", "name", "cashiering"]
        help_texts = {
            "code": "The school's code in the student information system.",
            "name": "The school's name as parents know it.",
            "cashiering": "Payments at this school are taken at cash drawers: a clerk's office "
            "payment goes into their open cash drawer session (Business office › Cash drawer "
            "sessions), and a partner's payment must name the drawer and session.",
        }


@admin.register(School)
class SchoolAdmin(NotFoundMixin, admin.ModelAdmin[School]):
    form = SchoolForm
    list_display = ["code", "name", "students", "cashiering"]
    search_fields = ["code", "name"]
    search_help_text = "Search by code or name."

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Cashiering is the business office's setting (whoever keeps the cash drawers).
        return [] if request.user.has_perm("accounting.change_cashdrawer") else ["cashiering"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[School]:
        return super().get_queryset(request).annotate(n_students=Count("students"))

    @admin.display(description="Students", ordering="n_students")
    def students(self, obj: School) -> int:
        return obj.n_students  # type: ignore[attr-defined]


# --- activities --------------------------------------------------------------------------------


class ActivityMemberInline(NoAddOrChangeMixin, admin.TabularInline[ActivityMembership, Activity]):
    model = ActivityMembership
    extra = 0
    fields = readonly_fields = ("student", "joined_on")
    verbose_name = "member"
    verbose_name_plural = "Members (add them with “Add members”, so the activity's fees follow)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ActivityMembership]:
        return super().get_queryset(request).select_related("student", "activity")


class ActivityForm(forms.ModelForm[Activity]):
    class Meta:
        model = Activity
        fields = ["name", "school", "is_sport"]
        labels = {"is_sport": "Sport"}
        help_texts = {
            "name": "e.g. Varsity football, Chess club.",
            "is_sport": "A sport rather than a club.",
        }


@admin.register(Activity)
class ActivityAdmin(ActionPageMixin, NotFoundMixin, admin.ModelAdmin[Activity]):
    form = ActivityForm
    change_form_template = "admin/students/activity/change_form.html"
    list_display = ["name", "school", "is_sport", "members_count"]
    list_select_related = ["school"]
    list_filter = ["is_sport", "school"]
    search_fields = ["name"]
    search_help_text = "Search by name."
    inlines = [ActivityMemberInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Activity]:
        return super().get_queryset(request).annotate(n_members=Count("members"))

    @admin.display(description="Members", ordering="n_members")
    def members_count(self, obj: Activity) -> int:
        return obj.n_members  # type: ignore[attr-defined]

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/add-members/",
                self.admin_site.admin_view(self.add_members_view),
                name="students_activity_add_members",
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
        extra = dict(extra_context or {})
        if may_join_students(request.user):
            extra["add_members_url"] = reverse(
                "admin:students_activity_add_members", args=[unquote(object_id)]
            )
        return super().change_view(request, object_id, form_url, extra)

    def add_members_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not may_join_students(request.user):
            raise PermissionDenied
        activity = self.get_object(request, unquote(object_id))
        if activity is None:
            raise Http404("No such activity.")
        form = ActivityMembersForm(
            request.POST if request.method == "POST" else None, activity=activity
        )
        if request.method == "POST" and form.is_valid():
            try:
                message = join_activity(
                    request, activity=activity, students=list(form.cleaned_data["students"])
                )
            except LedgerError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, message)
                return HttpResponseRedirect(admin_url(activity))
        fees = FeeAssignment.objects.filter(student_list__activity=activity)
        follows = ", ".join(f"{a.description} ({dollars(a.amount)})" for a in fees) or "none"
        return self.render_action_page(
            request,
            form=form,
            obj=activity,
            title=f"Add members to {activity.name}",
            submit_label="Add members",
            cancel_url=admin_url(activity),
            summary=[
                ("Activity", activity),
                ("Members now", activity.n_members),  # type: ignore[attr-defined]
                ("Fees that follow new members", follows),
            ],
        )


# --- student lists ----------------------------------------------------------------------------


class StudentListForm(forms.ModelForm[StudentList]):
    class Meta:
        model = StudentList
        fields = ["name", "kind", "school", "grade", "activity", "status", "students"]
        help_texts = {
            "name": "A name staff will recognise, e.g. “Grade 5, Lincoln Elementary”.",
            "kind": "Dynamic: whoever matches the filter on the day it is used. "
            "Fixed: exactly the students you name.",
            "status": "Which students a dynamic list takes.",
            "students": "Fixed lists only. Type a name or student number.",
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        kind = cleaned.get("kind")
        if kind == StudentList.Kind.FIXED:
            used = [
                self.fields[name].label
                for name in ("school", "grade", "activity")
                if cleaned.get(name)
            ]
            if used:
                raise forms.ValidationError(
                    "A fixed list names its students; the filter fields are not used. "
                    f"Clear {', '.join(str(u) for u in used)} or make it a dynamic list."
                )
        elif kind == StudentList.Kind.DYNAMIC and cleaned.get("students"):
            self.add_error(
                "students",
                "A dynamic list picks its students by the filter; remove the named "
                "students or make it a fixed list.",
            )
        return cleaned


@admin.register(StudentList)
class StudentListAdmin(NotFoundMixin, admin.ModelAdmin[StudentList]):
    form = StudentListForm
    list_display = ["name", "kind", "school", "grade", "activity", "status", "created_at"]
    list_select_related = ["school", "activity"]
    list_filter = ["kind", "status"]
    search_fields = ["name"]
    search_help_text = "Search by name."
    autocomplete_fields = ["students"]
    readonly_fields = ["students_today", "fees_for_this_list"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "students_today", "fees_for_this_list"]}),
        (
            "Dynamic list: who is on it",
            {
                "fields": ["school", "grade", "activity", "status"],
                "description": "Used by dynamic lists only. Empty fields mean “any”.",
            },
        ),
        (
            "Fixed list: the students",
            {"fields": ["students"], "description": "Used by fixed lists only."},
        ),
    ]

    @admin.display(description="Students on the list today")
    def students_today(self, obj: StudentList) -> str:
        if obj.pk is None:
            return "— (save the list to count its students)"
        count = student_list_students(student_list=obj).count()
        return f"{count:,}"

    @admin.display(description="Fees for this list")
    def fees_for_this_list(self, obj: StudentList) -> str:
        if obj.pk is None:
            return "—"
        assignments = obj.fee_assignments.all()
        if not assignments:
            return "None yet."
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((admin_url(a), f"{a.description} ({dollars(a.amount)})") for a in assignments),
        )
