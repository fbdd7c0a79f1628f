"""Issue 11 in the browser (Chromium at 1366 and 390 px) against the live server and real
vendor sandboxes: one vendor per fee on the setup page (item 2), tasks off for want of a
prerequisite (item 3), task-run outcomes in words and colour (item 6), parked changes
that need a retry (item 7). Screenshots go to tests/artifacts/."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.vendors.jobs import task_run
from apps.vendors.models import Integration, MerchantAccountMapping, OutboxItem
from tests.browser.test_setup_e2e import assert_no_sideways_scroll, section, shoot, sign_in
from tests.factories import (
    CategoryFactory,
    MerchantAccountFactory,
    StaffFactory,
    StudentFactory,
    make_fee,
)
from tests.sync.conftest import Sandbox, integration_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [({"width": 1366, "height": 900}, "1366"), ({"width": 390, "height": 844}, "390")]
IN_SCOPE = dt.date(2026, 9, 15)


@pytest.fixture
def communitypass_sandbox() -> Iterator[Sandbox]:
    box = Sandbox("communitypass")
    try:
        yield box
    finally:
        box.stop()


def pages(browser: Any, base: str, user: str) -> Iterator[tuple[Any, str]]:
    for viewport, name in VIEWPORTS:
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        sign_in(page, base, user)
        yield page, name
        context.close()


def ready(integration: Integration) -> Integration:
    """What the enable checklist asks for, done (tests passed, an account mapped)."""
    Integration.objects.filter(pk=integration.pk).update(test_pull_ok=True, test_push_ok=True)
    MerchantAccountMapping.objects.create(
        integration=integration, merchant_account=MerchantAccountFactory()
    )
    integration.refresh_from_db()
    return integration


def test_one_vendor_per_fee_is_shown_before_saving_and_refused_with_names(
    browser,
    live_server,
    payschools_sandbox: Sandbox,
    communitypass_sandbox: Sandbox,
    artifacts: Path,
):
    StaffFactory(username="district", groups=["District admin"])
    library = CategoryFactory(code="LIBFINE", description="Library fines")
    activity = CategoryFactory(code="ACTIVITY", description="Activities")
    integration_for(payschools_sandbox, name="PaySchools (district)", categories=[library])
    cp = ready(
        integration_for(
            communitypass_sandbox,
            name="Community Pass (clubs)",
            enabled=False,
            categories=[library, activity],
        )
    )
    url = f"{live_server.url}/admin/vendors/integration/{cp.pk}/change/"

    for page, name in pages(browser, live_server.url, "district"):
        page.goto(url)
        categories = section(page, "categories")
        # Before anything is saved: which category another vendor already sends.
        assert categories.get_by_role(
            "checkbox", name=re.compile("LIBFINE.*already sent by PaySchools \\(district\\)")
        ).is_visible()
        assert not categories.get_by_role(
            "checkbox", name=re.compile("ACTIVITY.*already sent")
        ).count()
        warning = categories.locator("#category-overlaps").inner_text()
        assert "Community Pass (clubs) cannot be enabled with these categories." in warning
        assert "PaySchools (district) is enabled and already sends Library fines" in warning
        checklist = section(page, "enable").locator(".feesync-checklist").inner_text()
        assert "No other vendor sends these categories" in checklist
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"one-vendor-per-fee-{name}.png")

    # Enabling anyway is refused, naming the other integration and the category.
    page = browser.new_context(viewport=VIEWPORTS[0][0]).new_page()
    sign_in(page, live_server.url, "district")
    page.goto(url)
    section(page, "enable").get_by_role("button", name="Enable Community Pass").click()
    text = section(page, "enable").inner_text()
    assert "Community Pass (clubs) cannot be enabled" in text
    assert "PaySchools (district) is enabled and already sends Library fines" in text
    cp.refresh_from_db()
    assert not cp.enabled

    # Narrowed to activities only, it can be enabled.
    categories = section(page, "categories")
    categories.get_by_role("checkbox", name=re.compile("LIBFINE")).uncheck()
    categories.get_by_role("button", name="Save categories").click()
    assert "1 category sent" in section(page, "categories").inner_text()
    assert not page.locator("#category-overlaps").count()
    section(page, "enable").get_by_role("button", name="Enable Community Pass").click()
    assert "Community Pass is enabled." in section(page, "enable").inner_text()

    # Now PaySchools cannot widen into activities: refused with the names, nothing saved.
    ps = Integration.objects.get(vendor_kind="payschools")
    page.goto(f"{live_server.url}/admin/vendors/integration/{ps.pk}/change/")
    categories = section(page, "categories")
    box = categories.get_by_role(
        "checkbox", name=re.compile("ACTIVITY.*already sent by Community Pass \\(clubs\\)")
    )
    box.check()
    categories.get_by_role("button", name="Save categories").click()
    text = section(page, "categories").inner_text()
    assert "These categories cannot be saved" in text
    assert "Community Pass (clubs) is enabled and already sends Activities" in text
    assert "Nothing was saved" in page.locator(".messagelist").inner_text()
    assert [c.code for c in ps.categories.all()] == ["LIBFINE"]
    shoot(page, artifacts, "one-vendor-per-fee-refused-1366.png")


def test_task_runs_read_succeeded_partly_failed_or_failed_in_words_and_colour(
    browser, live_server, payschools_sandbox: Sandbox, artifacts: Path
):
    StaffFactory(username="support", groups=["Support staff"])
    integration = integration_for(payschools_sandbox, name="PaySchools", enabled=False)
    make_fee(fee_date=IN_SCOPE)
    make_fee(fee_date=IN_SCOPE)
    refused = make_fee(student=StudentFactory(student_number=""), fee_date=IN_SCOPE)
    Integration.objects.filter(pk=integration.pk).update(enabled=True)
    integration.refresh_from_db()
    task_run(integration=integration, task="send-fees")  # 2 sent, 1 refused
    task_run(integration=integration, task="get-payments")  # nothing failing
    payschools_sandbox.faults("down")
    make_fee(fee_date=IN_SCOPE)
    # Its delivery on commit failed; time passes, and the next run tries it again.
    Integration.objects.filter(pk=integration.pk).update(backoff_until=None)
    OutboxItem.objects.update(next_attempt_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    task_run(integration=integration, task="send-fees")  # the vendor is down
    payschools_sandbox.faults("ok")
    url = f"{live_server.url}/admin/vendors/integration/{integration.pk}/dashboard/?refresh=off"

    for page, name in pages(browser, live_server.url, "support"):
        page.goto(url)
        send = page.locator("#task-send-fees table")
        rows = send.locator("tbody tr")
        assert rows.count() == 2
        latest, earlier = rows.nth(0), rows.nth(1)
        failed = latest.locator(".feesync-flag")
        assert failed.inner_text() == "Failed"
        assert "feesync-flag-bad" in failed.get_attribute("class")
        # The refused fee was queued again with the new one: neither went out.
        assert "2 fees not sent" in latest.inner_text()
        assert "HTTP 503" in latest.inner_text()
        partly = earlier.locator(".feesync-flag")
        assert partly.inner_text() == "Partly failed (1 of 3 failed)"
        assert "feesync-flag-warn" in partly.get_attribute("class")
        assert f"Fee {refused.reference} refused:" in earlier.inner_text()
        assert "StudentId" in earlier.inner_text()
        # Three colours for three outcomes.
        colours = {
            page.locator(f"#task-{task} table tbody tr")
            .nth(n)
            .locator(".feesync-flag")
            .evaluate("e => getComputedStyle(e).backgroundColor")
            for task, n in (("send-fees", 0), ("send-fees", 1), ("get-payments", 0))
        }
        assert len(colours) == 3
        ok = page.locator("#task-get-payments table tbody tr").first.locator(".feesync-flag")
        assert ok.inner_text() == "Succeeded"
        # A task without its prerequisite is off and says why.
        lunch = page.locator("#task-sync-lunch")
        assert "Off while “Sync lunch balance” is not checked" in lunch.inner_text()
        assert not lunch.get_by_role("button", name=re.compile("Run now")).count()
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"run-outcomes-{name}.png")


def test_parked_changes_need_a_retry_and_retrying_while_down_warns(
    browser, live_server, payschools_sandbox: Sandbox, artifacts: Path, settings
):
    settings.FEESYNC_DELIVERY_MAX_ATTEMPTS = 1  # the first failure parks
    StaffFactory(username="district", groups=["District admin"])
    integration = integration_for(payschools_sandbox, name="PaySchools")
    payschools_sandbox.faults("down")
    student = StudentFactory(first_name="Grace", last_name="Hopper")
    parked_fee = make_fee(student=student, description="Chemistry lab", fee_date=IN_SCOPE)
    # Delivered on commit (eager), it failed once and parked; the next change waits for
    # the backoff to end.
    waiting_fee = make_fee(fee_date=IN_SCOPE)
    states = dict(OutboxItem.objects.values_list("fee_id", "state"))
    assert states == {parked_fee.pk: "parked", waiting_fee.pk: "pending"}
    url = f"{live_server.url}/admin/vendors/integration/{integration.pk}/dashboard/?refresh=off"

    for page, name in pages(browser, live_server.url, "district"):
        page.goto(url)
        banner = page.locator(".feesync-banner").first.inner_text()
        assert "1 change is waiting and will be sent when PaySchools answers again." in banner
        assert (
            "1 change is parked after repeated failures: it is not sent again until someone "
            "retries it"
        ) in banner
        parked = section(page, "parked")
        row = parked.locator("tbody tr").first.inner_text()
        assert "Parked: needs a retry" in row
        assert "Grace Hopper" in row and "Chemistry lab" in row and f"${parked_fee.amount}" in row
        warning = parked.locator("#retry-warning").inner_text()
        assert "Retrying now will probably park them again." in warning
        assert "park again after 1 failed attempts" in warning
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"parked-{name}.png")

    page = browser.new_context(viewport=VIEWPORTS[0][0]).new_page()
    sign_in(page, live_server.url, "district")
    page.goto(url)
    section(page, "parked").get_by_role("button", name="Retry all 1").click()
    message = page.locator(".messagelist").inner_text()
    assert "1 parked change will be sent again now." in message
    assert "PaySchools is still failing" in message
    # Still down: it failed again and parked again, as the page said it would.
    assert OutboxItem.objects.get(fee=parked_fee).state == "parked"

    payschools_sandbox.faults("ok")
    Integration.objects.filter(pk=integration.pk).update(consecutive_failures=0)
    page.goto(url)
    assert not page.locator("#retry-warning").count()
    # The waiting change was tried with it, and parked too (one attempt is the bound here).
    section(page, "parked").get_by_role("button", name="Retry all 2").click()
    assert "2 parked changes will be sent again now." in page.locator(".messagelist").inner_text()
    assert {parked_fee.reference, waiting_fee.reference} <= set(payschools_sandbox.fees())
    assert not OutboxItem.objects.exists()


def test_unsaved_changes_in_another_step_are_named_before_they_could_be_lost(
    browser, live_server, payschools_sandbox: Sandbox, artifacts: Path
):
    """Item 1: each step saves on its own, so the page says which steps hold unsaved
    edits, and asks before saving another step or leaving would drop them."""
    StaffFactory(username="district", groups=["District admin"])
    trips = CategoryFactory(code="TRIP", description="Field trips")
    CategoryFactory(code="ATH", description="Athletics")
    integration = integration_for(
        payschools_sandbox, name="PaySchools", enabled=False, categories=[trips]
    )
    url = f"{live_server.url}/admin/vendors/integration/{integration.pk}/change/"

    for page, name in pages(browser, live_server.url, "district"):
        asked: list[tuple[str, str]] = []
        answer = {"accept": False}

        def on_dialog(dialog: Any, asked=asked, answer=answer) -> None:
            asked.append((dialog.type, dialog.message))
            if answer["accept"] or dialog.type == "beforeunload":
                dialog.accept()
            else:
                dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(url)
        note = page.locator("#unsaved-note")
        assert not note.is_visible()
        section(page, "parent-options").get_by_label("Message to parents").fill("Pay by Friday.")
        section(page, "categories").get_by_role("checkbox", name=re.compile("ATH")).check()
        assert note.is_visible()
        assert (
            "You have unsaved changes in “Categories”, “Parent options”" in note.inner_text()
            or "You have unsaved changes in “Parent options”, “Categories”" in note.inner_text()
        )
        shoot(page, artifacts, f"unsaved-changes-{name}.png")

        # Saving categories would drop the parent message: asked, and declined.
        section(page, "categories").get_by_role("button", name="Save categories").click()
        assert asked and asked[-1][0] == "confirm"
        assert "unsaved changes in “Parent options”" in asked[-1][1]
        assert "Categories" not in asked[-1][1]
        assert [c.code for c in integration.categories.all()] == ["TRIP"]
        assert section(page, "parent-options").get_by_label("Message to parents").input_value() == (
            "Pay by Friday."
        )

        # Saving the parent options first: nothing else is lost but the categories, which
        # the question names.
        answer["accept"] = True
        section(page, "parent-options").get_by_role("button", name="Save parent options").click()
        assert "unsaved changes in “Categories”" in asked[-1][1]
        assert "Parent options saved." in section(page, "parent-options").inner_text()
        integration.refresh_from_db()
        assert integration.parent_message == "Pay by Friday."
        assert not page.locator("#unsaved-note").is_visible()

        # Leaving with an unsaved edit asks too (the browser's own question).
        section(page, "categories").get_by_role("checkbox", name=re.compile("ATH")).check()
        count = len(asked)
        page.goto(f"{live_server.url}/admin/")
        assert len(asked) == count + 1 and asked[-1][0] == "beforeunload"
        Integration.objects.filter(pk=integration.pk).update(parent_message="")


def test_the_staff_home_shows_health_payments_today_and_the_work_waiting(
    browser, live_server, payschools_sandbox: Sandbox, artifacts: Path
):
    """Item 5: /admin/ opens on each integration's health, today's payments by vendor and
    merchant account, and links to the work; axe-core finds nothing serious there."""
    from tests.browser_support import AXE_JS, axe_violations, require_browser

    require_browser(AXE_JS)
    StaffFactory(username="district", groups=["District admin"])
    StaffFactory(username="support", groups=["Support staff"])
    integration = integration_for(payschools_sandbox, name="PaySchools (district)")
    fee = make_fee(fee_date=IN_SCOPE, amount="30.00")
    assert fee.reference in payschools_sandbox.fees()  # delivered on commit
    payschools_sandbox.control("pay", fee_ref=fee.reference, amount="12.50")
    task_run(integration=integration, task="get-payments")
    payschools_sandbox.faults("down")
    make_fee(fee_date=IN_SCOPE)  # fails: waiting
    payschools_sandbox.faults("ok")

    for user in ("district", "support"):
        for page, name in pages(browser, live_server.url, user):
            page.goto(f"{live_server.url}/admin/")
            health = page.locator("#health tbody tr").first.inner_text()
            assert "PaySchools (district)" in health and "Not answering" in health
            assert "Never" not in health  # sent and pulled today
            cells = page.locator("#health tbody tr").first.locator("td")
            assert cells.nth(3).inner_text() == "1"  # waiting
            today = page.locator("#payments-today").inner_text()
            assert "PaySchools (district)" in today
            assert fee.merchant_account.name in today and "$12.50" in today
            work = page.locator("#work")
            assert work.get_by_role("link", name="Open findings").is_visible()
            assert work.get_by_role("link", name="Parked changes (need a retry)").is_visible()
            # Developer-only tables: under "System" for the district admin, out of
            # support's sight.
            system = page.locator("div.app-system")
            if user == "district":
                assert "Outbox items" in system.inner_text()
                assert "Access attempts" in system.inner_text()
            else:
                assert not system.count()
                assert "Outbox items" not in page.locator("#content-main").inner_text()
            assert axe_violations(page, "#content-main") == []
            assert_no_sideways_scroll(page)
            # Each home table fits its box: nothing to scroll sideways inside it either.
            for box in page.locator(".feesync-home .feesync-scroll").all():
                widths = box.evaluate(
                    "e => [e.scrollWidth, e.clientWidth, [...e.querySelectorAll('*')].filter("
                    "c => c.getBoundingClientRect().right > e.getBoundingClientRect().right)"
                    ".map(c => c.tagName + '.' + c.className + ':' + c.textContent.slice(0, 30))]"
                )
                assert widths[0] <= widths[1] + 1, (name, widths)
            shoot(page, artifacts, f"staff-home-{user}-{name}.png")


def test_confirming_a_bulk_assignment_lands_on_its_progress(browser, live_server, artifacts: Path):
    """Item 10: the confirmation opens the job's own page, which shows the real count (the
    job runs eagerly in tests, so it is done by the time the page is drawn)."""
    from apps.fees.models import BulkJob
    from apps.fees.services import Origin, assignment_create
    from apps.students.models import StudentList
    from tests.factories import SchoolFactory, StudentListFactory

    StaffFactory(username="clerk", groups=["Fees clerk"])
    school = SchoolFactory()
    for _ in range(3):
        StudentFactory(school=school, grade="5")
    roster = StudentListFactory(
        name="Grade 5", school=school, grade="5", status=StudentList.Status.ANY
    )
    assignment = assignment_create(
        student_list=roster,
        category=CategoryFactory(),
        merchant_account=MerchantAccountFactory(),
        description="Yearbook",
        amount="25.00",
        fee_date=IN_SCOPE,
        origin=Origin(),
    )
    url = f"{live_server.url}/admin/fees/feeassignment/{assignment.pk}/assign/"
    for page, name in pages(browser, live_server.url, "clerk"):
        page.goto(url)
        page.locator(".submit-row input[type=submit]").click()
        job = BulkJob.objects.order_by("-pk").first()
        assert job is not None
        page.wait_for_url(re.compile(f"/admin/fees/bulkjob/{job.pk}/"))
        text = page.locator("#content-main").inner_text()
        assert "has started" in page.locator(".messagelist").inner_text()
        assert "0 of 0" not in text
        # The second time round the students already have it: counted, and skipped.
        assert "3 of 3 done (100%)" in text
        assert_no_sideways_scroll(page)
        shoot(page, artifacts, f"bulk-progress-{name}.png")
