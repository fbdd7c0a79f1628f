"""The "Partner API" kind: a vendor that is not pulled from or pushed to, but posts into
FeeSync's ledger itself through the partner API (apps.partner_api, Anthology Student's
payment-partner contract).

So it declares no capabilities: no send, pull or validation tasks run for it. What the
integration fixes for its API users is its scope, as for any kind: the merchant account
(its first merchant-account mapping) that the charges it posts are paid into, and the fee
categories (billing codes) it may post charges in (none selected: all)."""

from __future__ import annotations

from typing import Any, ClassVar

from apps.vendors.kinds.base import Capability, CheckResult, VendorAdapter


class PartnerApiAdapter(VendorAdapter):
    kind: ClassVar[str] = "partnerapi"
    name: ClassVar[str] = "Partner API"
    description: ClassVar[str] = (
        "A payment provider that posts payments, charges and payment plans to FeeSync "
        "through the partner API (Anthology Student's payment-partner contract). Add its API "
        "users and application keys in the admin."
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    contract: ClassVar[str] = "apps/vendors/kinds/partnerapi/contract.md"
    service_url_help: ClassVar[str] = (
        "The vendor's own website (shown to staff only); the vendor calls FeeSync, not the "
        "other way round."
    )

    dashboard_template: ClassVar[str] = "admin/vendors/partnerapi/_dashboard.html"

    @classmethod
    def dashboard_context(cls, integration: Any) -> dict[str, Any]:
        from apps.partner_api.selectors import partner_dashboard  # the API app builds on vendors

        return partner_dashboard(integration=integration)

    def test_pull(self) -> CheckResult:
        return CheckResult(
            ok=True,
            tried="Nothing to pull: this vendor posts to FeeSync's partner API.",
            answer="Partner API integrations are checked by the calls the vendor makes "
            "(see the integration's dashboard).",
            elapsed_ms=0,
        )

    def test_push(self) -> CheckResult:
        return CheckResult(
            ok=True,
            tried="Nothing to push: this vendor posts to FeeSync's partner API.",
            answer="Partner API integrations receive nothing from FeeSync.",
            elapsed_ms=0,
        )
