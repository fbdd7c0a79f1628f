"""The only writers of the business office's records (apps.accounting.models).

One module per area, so each can be read alone: `refunds` (the scheduled-refund cycle and
unscheduled refunds), `receipts` (miscellaneous cash receipts), `close` (the daily release
to the general ledger and its reports), `awards` (student awards and payments to fund
sources), `cashiering` (drawers and sessions). Money on a student's card still moves only
through `apps.fees.services` (the one door for money from outside is
`apps.fees.services.outside`)."""
