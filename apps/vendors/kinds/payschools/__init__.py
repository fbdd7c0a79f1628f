"""PaySchools: SOAP 1.1 from a WSDL, WS-Security username token (contract.md beside this)."""

from .adapter import PaySchoolsAdapter as Adapter

__all__ = ["Adapter"]
