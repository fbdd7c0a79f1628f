"""Schools, students, their guardians (parent logins), activities and saved student lists."""

from __future__ import annotations

from django.conf import settings
from django.db import models


#: The student information system's own id of a record (OneRoster `sourcedId`): the roster
#: import matches on it, never on a name. Empty (NULL) for records typed in by hand.
def _sourced_id_field() -> models.CharField:
    return models.CharField(
        max_length=255,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text="The id of this record in the student information system (roster import).",
    )


def _sis_modified_field() -> models.DateTimeField:
    # OneRoster's dateLastModified of the row last applied: an older delta row is stale.
    return models.DateTimeField(null=True, blank=True, editable=False)


class School(models.Model):
    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=120)
    sourced_id = _sourced_id_field()
    cashiering = models.BooleanField(
        default=False,
        help_text="Payments at this school are taken at cash drawers: a partner posting a "
        "payment must name the cash drawer (and the cashier, without an open drawer session).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Student(models.Model):
    student_number = models.CharField(
        max_length=20, unique=True, help_text="The district's student ID; vendors key on it."
    )
    first_name = models.CharField(max_length=60)
    last_name = models.CharField(max_length=60)
    grade = models.CharField(max_length=4, help_text="K, 1 … 12.")
    school = models.ForeignKey(School, on_delete=models.PROTECT, related_name="students")
    active = models.BooleanField(default=True, help_text="Inactive: withdrawn or graduated.")
    enrollment_date = models.DateField(null=True, blank=True)
    sourced_id = _sourced_id_field()
    sis_modified_at = _sis_modified_field()

    class Meta:
        ordering = ["last_name", "first_name"]
        indexes = [
            models.Index(fields=["last_name", "first_name"]),
            models.Index(fields=["school", "grade"]),
        ]

    def __str__(self) -> str:
        return f"{self.last_name}, {self.first_name} ({self.student_number})"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Guardian(models.Model):
    """A parent or guardian; `user` is their parent-portal login."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="guardian",
    )
    first_name = models.CharField(max_length=60)
    last_name = models.CharField(max_length=60)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    address = models.CharField(max_length=200, blank=True)
    students = models.ManyToManyField(Student, related_name="guardians", blank=True)
    sourced_id = _sourced_id_field()
    sis_modified_at = _sis_modified_field()
    invited_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the last portal invitation went out."
    )

    class Meta:
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Activity(models.Model):
    """A sport or club. Fees assigned to an activity follow students who join it later."""

    name = models.CharField(max_length=120)
    school = models.ForeignKey(
        School,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="activities",
        help_text="Leave empty for a district-wide activity.",
    )
    is_sport = models.BooleanField(default=False)
    members = models.ManyToManyField(
        Student, through="ActivityMembership", related_name="activities", blank=True
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "activities"

    def __str__(self) -> str:
        return self.name


class ActivityMembership(models.Model):
    activity = models.ForeignKey(Activity, on_delete=models.CASCADE)
    student = models.ForeignKey(Student, on_delete=models.CASCADE)
    joined_on = models.DateField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["activity", "student"], name="one_membership")
        ]

    def __str__(self) -> str:
        return f"{self.student} in {self.activity}"


class StudentList(models.Model):
    """A saved list of students.

    A *dynamic* list is a saved filter (school, grade, activity, status) evaluated against
    today's students each time it is used; a *fixed* list names its students (e.g. "all
    students assigned this fee").
    """

    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", "Dynamic (saved filter)"
        FIXED = "fixed", "Fixed (named students)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active students"
        INACTIVE = "inactive", "Inactive students"
        ANY = "any", "Active and inactive"

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DYNAMIC)
    school = models.ForeignKey(
        School, on_delete=models.PROTECT, null=True, blank=True, help_text="Empty: every school."
    )
    grade = models.CharField(max_length=4, blank=True, help_text="Empty: every grade.")
    activity = models.ForeignKey(
        Activity,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        help_text="Only members of this activity. Fees assigned to such a list follow "
        "students who join the activity later.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    students = models.ManyToManyField(
        Student, blank=True, related_name="fixed_lists", help_text="Fixed lists only."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
