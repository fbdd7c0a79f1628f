from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from . import views, views_commands, views_refunds

urlpatterns = [
    path(
        "student-accounting/ledger-payment-transactions",
        views.LedgerPaymentTransactions.as_view(),
        name="api_ledger_payment_transactions",
    ),
    path(
        "student-accounting/ledger-chargeoradjustment-transactions",
        views.LedgerChargeOrAdjustmentTransactions.as_view(),
        name="api_ledger_charge_transactions",
    ),
    path(
        "student-accounting/ledger-transactions-applypayments",
        views.LedgerTransactionsApplyPayments.as_view(),
        name="api_ledger_apply_payments",
    ),
    path(
        "student-accounting/student-payment-plan",
        views.StudentPaymentPlan.as_view(),
        name="api_student_payment_plan",
    ),
    # OData queries (issue 14): the service document, $metadata and the entity sets.
    path("odata/", include("apps.partner_api.odata.urls")),
    path(
        "commands/StudentAccounts/StudentAccountTransaction/PostAccountTransactionPayment",
        views_commands.PostAccountTransactionPayment.as_view(),
        name="api_post_account_transaction_payment",
    ),
    # Part 2: refunds and miscellaneous cash receipts (views_refunds).
    path(
        "student-accounting/scheduled-refunds-status",
        views_refunds.ScheduledRefundsStatus.as_view(),
        name="api_scheduled_refunds_status",
    ),
    path(
        "student-accounting/ledger-scheduled-refund-transactions",
        views_refunds.LedgerScheduledRefundTransactions.as_view(),
        name="api_ledger_scheduled_refund_transactions",
    ),
    path(
        "student-accounting/ledger-refund-transactions",
        views_refunds.LedgerRefundTransactions.as_view(),
        name="api_ledger_refund_transactions",
    ),
    path(
        "student-accounting/misc-cash-receipts",
        views_refunds.MiscCashReceipts.as_view(),
        name="api_misc_cash_receipts",
    ),
    path(
        "schema/",
        SpectacularAPIView.as_view(permission_classes=[AllowAny], authentication_classes=[]),
        name="api_schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="api_schema", permission_classes=[AllowAny], authentication_classes=[]
        ),
        name="api_docs",
    ),
]
