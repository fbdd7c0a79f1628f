"""Forms of the integration setup screens and the sync dashboard.

Forms parse what staff typed; the rules that matter (required credentials, what a vendor
can back up, the test gate on the import-after date) live in `apps.vendors.services`, whose
`IntegrationError` the views put back on these forms (`add_service_errors`). Every field has
a label and help text, so the pages read well in a screen reader and on a phone.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import capfirst, slugify

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.common.forms import CrispyFormMixin, fieldset
from apps.fees.models import Fee

from .kinds.base import URL_HELP, Capability, WebAddressField
from .models import Integration
from .registry import get_adapter_class, kind_choices, kind_name, kinds
from .services import TRANSFER_CREDENTIAL_FIELDS, categories_sent_elsewhere


def possessive(name: str) -> str:
    """“PaySchools'”, “Community Pass'”, “Acme's”."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Put a service's refusal on the form: field errors by name (unknown names become
    errors of the whole form), plain messages on the form itself."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            for e in errors:
                form.add_error(field if field in form.fields else None, e.messages)
    else:
        form.add_error(None, error.messages)


# --- adding an integration ---------------------------------------------------------------------


def kind_description(kind: str) -> str:
    """What a kind is, for the "Add an integration" page (its declared description)."""
    cls = kinds().get(kind)
    return cls.description if cls else ""


class VendorChoiceWidget(forms.RadioSelect):
    """One radio button per vendor: the vendor's name as its label, what it offers below
    (tied to the button with aria-describedby)."""

    option_template_name = "vendors/widgets/vendor_option.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"class": "feesync-vendor-choices", **(attrs or {})})

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        option["description"] = kind_description(value)
        if option["description"]:
            option["attrs"]["aria-describedby"] = f"{option['attrs']['id']}_description"
        return option


class IntegrationAddForm(forms.Form):
    vendor_kind = forms.ChoiceField(
        label="Payment vendor",
        choices=kind_choices,
        widget=VendorChoiceWidget,
        help_text="Which vendor parents will pay through. It cannot be changed later; "
        "set up another integration for another vendor.",
    )
    name = forms.CharField(
        label="Name",
        max_length=120,
        required=False,
        help_text="What staff read in lists, e.g. “PaySchools – district fees”. "
        "Empty: the vendor's name.",
    )
    slug = forms.SlugField(
        label="Short name",
        max_length=50,
        required=False,
        help_text="Letters, digits and hyphens, used in commands (manage.py sync_status "
        "SHORT-NAME). Empty: made from the name.",
    )
    service_url = WebAddressField(
        label="Service URL",
        help_text="The vendor's API address, from the vendor's welcome letter. "
        + URL_HELP
        + " You can change it later.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("vendor_kind")
        if kind and not data.get("name"):
            data["name"] = kind_name(kind)
        if data.get("name") and not data.get("slug"):
            data["slug"] = slugify(data["name"])[:50] or "integration"
        return data


# --- 1. connection: address, credentials, demographics server ----------------------------------


def _in_a_sentence(label: str) -> str:
    """“Password” -> “password”, but “API key” stays “API key” (an acronym keeps its case)."""
    first = label.split(" ", 1)[0]
    return label if first.isupper() and len(first) > 1 else label[:1].lower() + label[1:]


def _secret_help(label: str, stored: str) -> str:
    name = _in_a_sentence(label)
    if stored:
        return (
            f"Stored: {stored}. Leave blank to keep it; type a new {name} to "
            "replace it. It is never shown again in full."
        )
    return f"Not set yet. The {name} is stored encrypted and never shown again."


class ConnectionForm(CrispyFormMixin, forms.Form):
    """The vendor's address, credentials (write-only) and the demographics server. A kind's
    own connection options render through their own widgets (crispy draws the label, help
    text and errors around whatever the widget is)."""

    service_url = WebAddressField(label="Service URL")
    timeout_seconds = forms.IntegerField(
        label="Timeout (seconds)",
        min_value=1,
        max_value=120,
        help_text="How long FeeSync waits for the vendor on each call before giving up "
        "and trying again later (1 to 120).",
    )

    def __init__(self, *args: Any, integration: Integration, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "service_url": integration.service_url,
                "timeout_seconds": integration.timeout_seconds,
                "transfer_protocol": integration.transfer_protocol,
                "transfer_host": integration.transfer_host,
                "transfer_port": integration.transfer_port,
                "transfer_directory": integration.transfer_directory,
                "transfer_host_key": integration.transfer_host_key,
            },
        )
        super().__init__(*args, **kwargs)
        self.integration = integration
        adapter = get_adapter_class(integration.vendor_kind)
        self.fields["service_url"].help_text = (
            (adapter.service_url_help or "The vendor's API address.") + " " + URL_HELP
        )
        masked = integration.masked_credentials()
        self.credential_names: list[str] = []
        for key, setting in adapter.settings_for(secret=True).items():
            declared = setting.field
            self.fields[key] = self._secret_field(
                key,
                str(declared.label),
                masked.get(key, ""),
                # A kind may allow a longer secret (a pasted RSA key): its own limit, its own
                # help; the shared 500 otherwise.
                max_length=getattr(declared, "max_length", None) or 500,
                multiline=isinstance(declared.widget, forms.Textarea),
                help_text=str(declared.help_text or ""),
            )
            self.credential_names.append(key)
        # The kind's own connection options (not secret), as it declares them.
        self.option_names: list[str] = []
        for key, setting in adapter.settings_for(step="connection", secret=False).items():
            self.fields[key] = setting.form_field()
            if getattr(self.fields[key].widget, "wants_preview_url", False):
                # A widget that redraws the file preview live posts the unsaved values here.
                self.fields[key].widget.attrs["data-preview-url"] = reverse(
                    "admin:vendors_integration_section", args=[integration.pk, "file-preview"]
                )
            self.initial.setdefault(key, integration.option(key))
            self.option_names.append(key)
        self.has_demographics = "demographics" in adapter.capabilities
        if self.has_demographics:
            self._add_transfer_fields(masked)

    @staticmethod
    def _secret_field(
        key: str,
        label: str,
        stored: str,
        *,
        max_length: int = 500,
        multiline: bool = False,
        help_text: str = "",
    ) -> forms.CharField:
        # Autocomplete off: a browser must never fill a staff member's own saved login
        # into a vendor's credentials.
        if "username" in key:
            widget: forms.Widget = forms.TextInput(
                attrs={"autocomplete": "off", "spellcheck": "false"}
            )
        elif multiline:
            # A pasted key keeps its line breaks (a password input drops them). Never
            # filled in: the stored key is shown only masked, in the help text.
            widget = forms.Textarea(attrs={"rows": 6, "autocomplete": "off", "spellcheck": "false"})
        else:
            widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        secret_help = _secret_help(label, stored)
        return forms.CharField(
            label=label,
            required=False,
            max_length=max_length,
            strip=True,
            widget=widget,
            help_text=f"{help_text} {secret_help}".strip() if help_text else secret_help,
        )

    def _add_transfer_fields(self, masked: dict[str, str]) -> None:
        model = Integration._meta
        self.fields["transfer_protocol"] = forms.ChoiceField(
            label="Demographics protocol",
            choices=Integration.TransferProtocol.choices,
            required=False,
            help_text="How the nightly student file reaches the vendor. SFTP is the safest.",
        )
        self.fields["transfer_host"] = forms.CharField(
            label="Demographics server",
            max_length=200,
            required=False,
            help_text="Host name of the vendor's file server, e.g. sftp.vendor.example.",
            widget=forms.TextInput(attrs={"spellcheck": "false"}),
        )
        self.fields["transfer_port"] = forms.IntegerField(
            label="Port",
            min_value=1,
            max_value=65535,
            required=False,
            help_text="Empty: 22 for SFTP, 21 for FTP and FTPS.",
        )
        self.fields["transfer_directory"] = forms.CharField(
            label="Directory",
            max_length=200,
            required=False,
            help_text="Where on the server the file goes. Empty or “.”: the login directory.",
        )
        self.fields["transfer_host_key"] = forms.CharField(
            label="Pinned host key",
            required=False,
            widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
            help_text=model.get_field("transfer_host_key").help_text,
        )
        for key, label in TRANSFER_CREDENTIAL_FIELDS.items():
            field = self._secret_field(key, f"Demographics {label.lower()}", masked.get(key, ""))
            field.help_text = _secret_help(label, masked.get(key, "")) + (
                " For the demographics server only."
            )
            self.fields[key] = field
            self.credential_names.append(key)

    def ask_secrets_again(self) -> None:
        """On a form shown again with errors: a secret typed is never sent back to the page,
        so each one typed says so at its field, or a second save would silently keep the
        old one (a blank secret keeps what is stored)."""
        for key in self.credential_names:
            if (self.data.get(key) or "").strip() and key not in self.errors:
                label = str(self.fields[key].label).lower()
                self.add_error(
                    key,
                    f"Type the {label} again: nothing was saved, and a secret is never "
                    "shown back on the page.",
                )

    def clean_transfer_directory(self) -> str:
        return (self.cleaned_data.get("transfer_directory") or "").strip() or "."

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        fields = {"service_url": data["service_url"], "timeout_seconds": data["timeout_seconds"]}
        if self.has_demographics:
            for name in (
                "transfer_protocol",
                "transfer_host",
                "transfer_port",
                "transfer_directory",
                "transfer_host_key",
            ):
                fields[name] = data.get(name)
            fields["transfer_protocol"] = fields["transfer_protocol"] or ""
            fields["transfer_host"] = (fields["transfer_host"] or "").strip()
        return {
            "credentials": {k: data.get(k) or "" for k in self.credential_names},
            "options": {k: data.get(k) for k in self.option_names},
            **fields,
        }

    def layout_items(self) -> list[Any]:
        return [
            *self.main_fields,
            fieldset("Demographics server (nightly student file)", *self.transfer_fields),
        ]

    @property
    def main_fields(self) -> list[str]:
        return (
            ["service_url", "timeout_seconds"]
            + [n for n in self.credential_names if not n.startswith("transfer_")]
            + self.option_names
        )

    @property
    def transfer_fields(self) -> list[str]:
        if not self.has_demographics:
            return []
        return [
            "transfer_protocol",
            "transfer_host",
            "transfer_port",
            "transfer_directory",
            "transfer_host_key",
            "transfer_username",
            "transfer_password",
        ]


# --- 2. merchant accounts ----------------------------------------------------------------------


class AccountMappingForm(CrispyFormMixin, forms.Form):
    """Every active merchant account (and any mapped inactive one): used with this vendor or
    not, and the vendor's id for it."""

    def __init__(self, *args: Any, integration: Integration, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.integration = integration
        vendor = integration.vendor_name
        mapped = {m.merchant_account_id: m for m in integration.account_mappings.all()}
        self.accounts = list(
            MerchantAccount.objects.filter(Q(active=True) | Q(pk__in=list(mapped))).order_by("name")
        )
        self.rows: list[tuple[MerchantAccount, str, str]] = []
        for account in self.accounts:
            row = mapped.get(account.pk)
            use, mid = f"use_{account.pk}", f"mid_{account.pk}"
            self.fields[use] = forms.BooleanField(
                label=f"Use with {vendor}",
                required=False,
                initial=row is not None,
                help_text=f"Fees of this account are paid through {vendor}.",
            )
            self.fields[mid] = forms.CharField(
                label=f"{possessive(vendor)} merchant ID",
                required=False,
                max_length=60,
                initial=row.vendor_merchant_id if row else "",
                help_text=f"Empty: {vendor} knows it by its own MID, {account.merchant_id}.",
                widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
            )
            self.rows.append((account, use, mid))

    def layout_items(self) -> list[Any]:
        # One group per account: its name (and MID) as the legend, its two fields inside.
        return [
            fieldset(
                format_html(
                    '{} <span class="feesync-quiet">MID {}{}</span>',
                    account.name,
                    account.merchant_id,
                    "" if account.active else ", inactive",
                ),
                use,
                mid,
                css_class="feesync-account",
            )
            for account, use, mid in self.rows
        ]

    def bound_rows(self) -> list[tuple[MerchantAccount, forms.BoundField, forms.BoundField]]:
        return [(account, self[use], self[mid]) for account, use, mid in self.rows]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.accounts and not any(
            data.get(use) or (data.get(mid) or "").strip() for _, use, mid in self.rows
        ):
            raise ValidationError(
                "Choose at least one merchant account: fees are paid into these accounts."
            )
        return data

    def mappings(self) -> dict[int, str | None]:
        """merchant account id -> vendor id ("" = own MID), or None: not used. A vendor id
        typed without ticking the box still counts as used (what the person meant)."""
        out: dict[int, str | None] = {}
        for account, use, mid in self.rows:
            vendor_id = (self.cleaned_data.get(mid) or "").strip()
            out[account.pk] = vendor_id if (self.cleaned_data.get(use) or vendor_id) else None
        return out


# --- 3. categories -----------------------------------------------------------------------------


def open_fee_counts(import_after: date | None) -> dict[int, int]:
    """Open fees per category, dated on or after `import_after` when one is given."""
    qs = Fee.objects.filter(status=Fee.Status.OPEN)
    if import_after is not None:
        qs = qs.filter(fee_date__gte=import_after)
    return dict(qs.values_list("category_id").annotate(n=Count("id")).order_by())


class CategoryChoices(forms.ModelMultipleChoiceField[FeeCategory]):
    """Fee categories, each labelled with its open fees (`counts`, set by the form)."""

    counts: dict[int, int] = {}
    #: category id -> other enabled integrations sending it (None: those sending all).
    taken: dict[int | None, list[str]] = {}

    def label_from_instance(self, obj: FeeCategory) -> str:
        n = self.counts.get(obj.pk, 0)
        inactive = "" if obj.active else ", inactive"
        label = f"{obj} ({n} open fee{'s' if n != 1 else ''}{inactive})"
        others = [*self.taken.get(obj.pk, []), *self.taken.get(None, [])]
        if others:
            label += " — already sent by " + " and ".join(others)
        return label


class CategoriesForm(CrispyFormMixin, forms.Form):
    categories = CategoryChoices(
        label="Categories to send",
        queryset=FeeCategory.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Fees in the checked categories are sent. When every category is checked, "
        "categories added later are sent too.",
    )

    def __init__(self, *args: Any, integration: Integration, **kwargs: Any) -> None:
        selected = list(integration.categories.values_list("pk", flat=True))
        self.counts = open_fee_counts(integration.import_after)
        queryset = FeeCategory.objects.filter(Q(active=True) | Q(pk__in=selected)).order_by("code")
        kwargs.setdefault(
            "initial", {"categories": selected or list(queryset.values_list("pk", flat=True))}
        )
        super().__init__(*args, **kwargs)
        self.integration = integration
        field = self.fields["categories"]
        if not isinstance(field, CategoryChoices):  # as declared above
            raise TypeError("CategoriesForm.categories must be a CategoryChoices field.")
        field.queryset = queryset
        field.counts = self.counts
        field.taken = categories_sent_elsewhere(integration=integration)

    def clean_categories(self) -> list[FeeCategory]:
        chosen = list(self.cleaned_data["categories"])
        if not chosen:
            raise ValidationError(
                "Check at least one category. To send every category, check them all."
            )
        active = set(FeeCategory.objects.filter(active=True).values_list("pk", flat=True))
        if active <= {c.pk for c in chosen}:
            return []  # every category, now and later
        return chosen


# --- 5. import-after date ----------------------------------------------------------------------


class ImportAfterForm(CrispyFormMixin, forms.Form):
    import_after = forms.DateField(
        label="Import-after date",
        help_text="Fees dated on or after this date in the selected categories will be sent; "
        "earlier fees never will.",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )


# --- 6. parent options -------------------------------------------------------------------------

#: The parent options every kind has (columns of Integration); a kind's own come from its
#: declared settings (step "parent").
PARENT_LABELS = {"parent_message": "Message to parents"}


class ParentOptionsForm(CrispyFormMixin, forms.Form):
    """The parent-portal options this kind can back up (the others are not offered): the
    pay button and message every kind has, then the kind's declared parent settings."""

    def __init__(self, *args: Any, integration: Integration, **kwargs: Any) -> None:
        kind = integration.kind
        declared = kind.settings_for(step="parent", secret=False)
        names = ["button_url", "button_text", *declared, "parent_message"]
        kwargs.setdefault("initial", {n: getattr(integration, n) for n in names})
        super().__init__(*args, **kwargs)
        self.integration = integration
        self.unavailable: list[str] = []
        if not kind.can(Capability.LUNCH):
            self.unavailable.append("lunch balances")
        if not kind.can(Capability.BALANCES):
            self.unavailable.append("account balances (vendor balance display and lockout)")
        model = Integration._meta
        vendor = integration.vendor_name
        for name in names:
            if name in declared:
                self.fields[name] = declared[name].form_field()
                continue
            model_field = model.get_field(name)
            if not isinstance(model_field, models.Field):  # a column of Integration
                raise TypeError(f"Integration.{name} is not a column.")
            if name == "button_url":
                field: forms.Field = WebAddressField(required=False)
            elif name == "parent_message":
                field = forms.CharField(
                    required=False, widget=forms.Textarea(attrs={"rows": 4}), strip=True
                )
            else:
                field = forms.CharField(required=False, max_length=model_field.max_length)
            field.label = PARENT_LABELS.get(name) or capfirst(str(model_field.verbose_name))
            help_text = str(model_field.help_text)
            if name == "button_url":
                help_text += " " + URL_HELP
            field.help_text = help_text
            self.fields[name] = field
        self.fields["button_text"].widget.attrs["placeholder"] = f"Go to {vendor}"
        self.fields["button_text"].help_text = f"Empty: “Go to {vendor}”."

    def service_arguments(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in self.fields}


# --- tasks, checks, dashboard ------------------------------------------------------------------


class DiscrepancyResolveForm(forms.Form):
    note = forms.CharField(
        label="How it was resolved",
        max_length=500,
        help_text="A short note kept with the finding, e.g. “Vendor removed the duplicate”.",
    )
