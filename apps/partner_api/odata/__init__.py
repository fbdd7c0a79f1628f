"""The partner API's OData feeds (`/api/odata/`): read-only queries over the business
office's records for a vendor's integration and for the district's own reporting (Excel's
Power Query opens them as they are).

* `entities` is the declarative machinery: an entity set is one class naming its model,
  key, properties (OData name, EDM type, Django field path) and navigations;
* `sets` declares the entity sets (Refunds, BillingTransactionCodes, ...), each with the
  rows its API user may see;
* `names` maps OData names (`StudentAward/FundSourceId`) to Django paths, `filters` turns
  `$filter` (parsed by the maintained `odata-query` package) into a `Q` after checking its
  names and types, `query` reads the other options (`$select`, `$orderby`, `$top`,
  `$skip`, `$expand`, `$count`), each refusing an unknown property or a bad expression with
  a message that names it; `selectors` reads one page;
* `render` writes the rows as OData JSON (v4, and the v2 dialect older clients speak),
  `metadata` the service's CSDL, and `views` serves them.
"""
