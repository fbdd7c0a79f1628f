"""The partner API: a vendor that pushes payments, charges and plans into FeeSync
(contract.md beside this; the API itself is apps.partner_api)."""

from .adapter import PartnerApiAdapter as Adapter

__all__ = ["Adapter"]
