// The add-fee form's receiver hint: which enabled integration will be sent the fee, for
// the category and fee date picked now, without a reload. The rule is
// apps.vendors.routing's (in scope on or after the import-after date, in its categories
// or every category); the routes come with the page as JSON (#receiver-routes).
(function () {
  "use strict";
  const hint = document.getElementById("receiver-hint");
  const data = document.getElementById("receiver-routes");
  const category = document.getElementById("id_category");
  const feeDate = document.getElementById("id_fee_date");
  if (!hint || !data || !category || !feeDate) return;
  const routes = JSON.parse(data.textContent);

  // The date as the admin's field holds it: 2026-09-15, 09/15/2026 or 09/15/26.
  function isoDate(text) {
    const value = text.trim();
    let m = value.match(/^(\d{4})-(\d{1,2})-(\d{1,2})$/);
    if (m) return [m[1], m[2].padStart(2, "0"), m[3].padStart(2, "0")].join("-");
    m = value.match(/^(\d{1,2})\/(\d{1,2})\/(\d{2}|\d{4})$/);
    if (m) {
      const year = m[3].length === 2 ? "20" + m[3] : m[3];
      return [year, m[1].padStart(2, "0"), m[2].padStart(2, "0")].join("-");
    }
    return null;
  }

  function update() {
    const categoryId = parseInt(category.value, 10);
    const day = isoDate(feeDate.value);
    if (!categoryId || !day) {
      hint.textContent =
        "Pick a category and a fee date to see which integration receives the fee.";
      return;
    }
    const names = routes
      .filter((r) => r.import_after !== null && day >= r.import_after)
      .filter((r) => r.categories.length === 0 || r.categories.includes(categoryId))
      .map((r) => r.name);
    hint.textContent = names.length
      ? "This fee will be sent to " + names.join(" and ") + "."
      : "No integration receives this fee: parents pay it to the district.";
  }

  ["change", "input"].forEach((type) => {
    category.addEventListener(type, update);
    feeDate.addEventListener(type, update);
  });
  // The admin's calendar and "Today" shortcut set the value without an input event.
  feeDate.addEventListener("blur", update);
  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest(".datetimeshortcuts, .calendarbox")) {
      window.setTimeout(update, 0);
    }
  });
  update();
})();
