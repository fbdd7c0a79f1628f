"""The service's `$metadata`: CSDL XML (EDMX 4.0) derived from the entity set declarations,
and the version 2 EDMX of the same sets for clients that speak only that version."""

from __future__ import annotations

from functools import cache
from xml.etree import ElementTree as ET  # noqa: S405 - we only write XML, never parse it

from .entities import NAMESPACE, EntitySet, target_of

EDMX4 = "http://docs.oasis-open.org/odata/ns/edmx"
EDM4 = "http://docs.oasis-open.org/odata/ns/edm"
EDMX1 = "http://schemas.microsoft.com/ado/2007/06/edmx"
EDM2 = "http://schemas.microsoft.com/ado/2008/09/edm"
DATASERVICES = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
CORE = "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml"
CONTAINER = "FeeSyncService"


def _sets() -> list[type[EntitySet]]:
    return list(EntitySet.registry.values())


def _property(parent: ET.Element, name: str, edm: str, nullable: bool) -> ET.Element:
    attrs = {"Name": name, "Type": edm, "Nullable": "true" if nullable else "false"}
    if edm == "Edm.Decimal":
        attrs.update(Precision="12", Scale="2")
    return ET.SubElement(parent, "Property", attrs)


def _describe(parent: ET.Element, text: str) -> None:
    if text:
        ET.SubElement(parent, "Annotation", {"Term": "Core.Description", "String": text})


@cache
def metadata_v4() -> bytes:
    root = ET.Element("edmx:Edmx", {"xmlns:edmx": EDMX4, "Version": "4.0"})
    ref = ET.SubElement(root, "edmx:Reference", {"Uri": CORE})
    ET.SubElement(ref, "edmx:Include", {"Namespace": "Org.OData.Core.V1", "Alias": "Core"})
    services = ET.SubElement(root, "edmx:DataServices")
    schema = ET.SubElement(services, "Schema", {"xmlns": EDM4, "Namespace": NAMESPACE})
    for entity in _sets():
        etype = ET.SubElement(schema, "EntityType", {"Name": entity.entity_type})
        key = ET.SubElement(etype, "Key")
        ET.SubElement(key, "PropertyRef", {"Name": entity.key})
        for prop in entity.properties:
            _describe(_property(etype, prop.name, prop.edm, prop.nullable), prop.description)
        for nav in entity.navigations:
            element = ET.SubElement(
                etype,
                "NavigationProperty",
                {
                    "Name": nav.name,
                    "Type": f"{NAMESPACE}.{target_of(nav).entity_type}",
                    "Nullable": "true" if nav.nullable else "false",
                },
            )
            _describe(element, nav.description)
        _describe(etype, entity.description)
    container = ET.SubElement(schema, "EntityContainer", {"Name": CONTAINER})
    for entity in _sets():
        eset = ET.SubElement(
            container,
            "EntitySet",
            {"Name": entity.name, "EntityType": f"{NAMESPACE}.{entity.entity_type}"},
        )
        for nav in entity.navigations:
            ET.SubElement(
                eset, "NavigationPropertyBinding", {"Path": nav.name, "Target": nav.target}
            )
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
        root, encoding="utf-8", xml_declaration=False
    )


@cache
def metadata_v2() -> bytes:
    """Version 2 has no Edm.Date (dates are Edm.DateTime at midnight) and navigations need
    associations: this dialect offers the properties only ($expand is version 4's)."""
    root = ET.Element("edmx:Edmx", {"xmlns:edmx": EDMX1, "Version": "1.0"})
    services = ET.SubElement(
        root, "edmx:DataServices", {"xmlns:m": DATASERVICES, "m:DataServiceVersion": "2.0"}
    )
    schema = ET.SubElement(services, "Schema", {"xmlns": EDM2, "Namespace": NAMESPACE})
    for entity in _sets():
        etype = ET.SubElement(schema, "EntityType", {"Name": entity.entity_type})
        key = ET.SubElement(etype, "Key")
        ET.SubElement(key, "PropertyRef", {"Name": entity.key})
        for prop in entity.properties:
            edm = "Edm.DateTime" if prop.edm == "Edm.Date" else prop.edm
            _property(etype, prop.name, edm, prop.nullable)
    container = ET.SubElement(
        schema, "EntityContainer", {"Name": CONTAINER, "m:IsDefaultEntityContainer": "true"}
    )
    for entity in _sets():
        ET.SubElement(
            container,
            "EntitySet",
            {"Name": entity.name, "EntityType": f"{NAMESPACE}.{entity.entity_type}"},
        )
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
        root, encoding="utf-8", xml_declaration=False
    )
