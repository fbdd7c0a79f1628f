"""The parts of the parent portal beyond Fees and Fines, and which of them a balance locks.

A district may lock parts of the portal while a family owes fees and fines above a threshold
(`models.PortalLockout`, which a vendor's balance may add to). Fees and Fines itself is never
locked: a parent must always see what is owed and how to pay it. Every other section is
declared here, once, with whether it can be locked; the lockout settings offer exactly these,
and the views and templates only ever ask this module, so a section added later is locked
(or not) without touching them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """One part of a child's portal page.

    `summary` says what the section is for, in the parents' words; `empty_text` is what the
    section says while the district has not put anything in it yet (nothing is invented)."""

    slug: str
    title: str
    summary: str
    empty_text: str
    lockable: bool = True


#: Sections after Fees and Fines, in the order parents see them.
CHILD_SECTIONS: tuple[Section, ...] = (
    Section(
        slug="documents",
        title="Documents",
        summary="Letters, forms and report cards the school shares with you.",
        empty_text="The school has not shared any documents here yet.",
    ),
    Section(
        slug="activities",
        title="Activity sign-up",
        summary="Sign up for sports, clubs and trips open for sign-up.",
        empty_text="No activities are open for sign-up right now.",
    ),
)


DOCUMENTS, ACTIVITIES = CHILD_SECTIONS

LOCKABLE_CHOICES: list[tuple[str, str]] = [(s.slug, s.title) for s in CHILD_SECTIONS if s.lockable]


def section_by_slug(slug: str) -> Section | None:
    return next((s for s in CHILD_SECTIONS if s.slug == slug), None)
