"""Community Pass: JSON over HTTPS with an API key and cursor pages (contract.md beside this)."""

from .adapter import CommunityPassAdapter as Adapter

__all__ = ["Adapter"]
