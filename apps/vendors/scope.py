"""Which fees an integration manages: its scope.

A fee is in an integration's scope when it is dated on or after the integration's
import-after date and is in one of its selected categories (none selected: every category,
including ones added later). With no import-after date, nothing is in scope yet. Fees out of
scope are never sent to the vendor, and the vendor may not settle them.

This is the only place that says so. The sync engine asks `fees()`, the parent portal asks
`covers(fee)` of fees already in memory, the setup page previews another date with
`with_date(day)`, and querysets of other models filter with `q(prefix)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from django.db.models import Q, QuerySet

from apps.fees.models import Fee

from .models import Integration


@dataclass(frozen=True)
class Scope:
    import_after: date | None  # None: nothing is in scope yet
    category_ids: frozenset[int] = frozenset()  # empty: every category

    @classmethod
    def of(cls, integration: Integration) -> Scope:
        """The integration's scope as stored now (one query, for its categories)."""
        ids = integration.categories.values_list("pk", flat=True)
        return cls(integration.import_after, frozenset(ids))

    @classmethod
    def of_each(cls, integrations: Iterable[Integration]) -> dict[int, Scope]:
        """The scopes of several integrations, by integration id, in one query."""
        integrations = list(integrations)
        selected: dict[int, set[int]] = {i.pk: set() for i in integrations}
        if selected:
            through = Integration.categories.through.objects.filter(integration_id__in=selected)
            for integration_id, category_id in through.values_list(
                "integration_id", "feecategory_id"
            ):
                selected[integration_id].add(category_id)
        return {i.pk: cls(i.import_after, frozenset(selected[i.pk])) for i in integrations}

    def with_date(self, day: date | None) -> Scope:
        """The same categories from another import-after date (the setup page's preview)."""
        return replace(self, import_after=day)

    def q(self, prefix: str = "") -> Q:
        """The scope as a filter on fees, or on another model through `prefix` (a lookup
        path ending in "__", e.g. "fee__")."""
        if self.import_after is None:
            return Q(**{f"{prefix}pk__in": []})  # matches nothing
        q = Q(**{f"{prefix}fee_date__gte": self.import_after})
        if self.category_ids:
            q &= Q(**{f"{prefix}category_id__in": sorted(self.category_ids)})
        return q

    def categories_q(self, prefix: str = "") -> Q:
        """Only the category half of the scope, whatever the date."""
        if not self.category_ids:
            return Q()
        return Q(**{f"{prefix}category_id__in": sorted(self.category_ids)})

    def fees(self) -> QuerySet[Fee]:
        if self.import_after is None:
            return Fee.objects.none()
        return Fee.objects.filter(self.q())

    def covers(self, fee: Fee) -> bool:
        """Whether `fee` is in `fees()`, decided on the fee in memory (no query), so a page
        of many fees costs nothing per fee."""
        if self.import_after is None or fee.fee_date < self.import_after:
            return False
        return not self.category_ids or fee.category_id in self.category_ids

    def changelist_filters(self) -> dict[str, Any]:
        """The scope as the staff fee list's URL filters; empty when nothing is in scope
        (there is no list to link to)."""
        if self.import_after is None:
            return {}
        query: dict[str, Any] = {"fee_date__gte": self.import_after.isoformat()}
        if self.category_ids:
            query["category__in"] = ",".join(str(i) for i in sorted(self.category_ids))
        return query
