/* Every autocomplete box of the staff site (Django's select2 widgets: a fee's student, a
   guardian's students, ...) gets the accessible name of its field. select2 draws its own
   combobox and names it by the text of the current choice only, so an empty one has no
   name at all (axe: "serious"), and a filled one is read as "Jane Doe" rather than
   "Student: Jane Doe". Here the combobox is labelled by the field's label and then the
   choice; in a table row, where a field has no label of its own, by its column heading.
   Loaded on every staff page (templates/admin/base_site.html). */
(function () {
  "use strict";

  function columnHeading(select) {
    var cell = select.closest("td");
    var table = select.closest("table");
    if (!cell || !table) return "";
    var name = Array.prototype.find.call(cell.classList, function (c) { return c.indexOf("field-") === 0; });
    var th = name && table.querySelector("thead th.column-" + name.slice(6));
    return th ? th.textContent.trim() : "";
  }

  function nameOne(select) {
    var container = select.nextElementSibling;
    if (!container || !container.classList.contains("select2")) return;
    var box = container.querySelector('[role="combobox"]');
    if (!box || box.dataset.feesyncNamed) return;
    var label = select.id ? document.querySelector('label[for="' + select.id + '"]') : null;
    var rendered = box.querySelector(".select2-selection__rendered");
    // The text of the choice is a read-only "textbox" of its own inside the box: it takes
    // the same name (axe asks every ARIA input for one).
    if (label) {
      if (!label.id) label.id = select.id + "_label";
      box.setAttribute("aria-labelledby", label.id + (rendered && rendered.id ? " " + rendered.id : ""));
      if (rendered) rendered.setAttribute("aria-labelledby", label.id);
    } else {
      var text = select.getAttribute("aria-label") || columnHeading(select) || select.name;
      box.removeAttribute("aria-labelledby");
      box.setAttribute("aria-label", text);
      if (rendered) rendered.setAttribute("aria-label", text);
    }
    // The search box of a multiple choice is named by the same label.
    var search = container.querySelector("input.select2-search__field");
    if (search && !search.getAttribute("aria-label")) {
      search.setAttribute("aria-label", label ? label.textContent.trim().replace(/:$/, "") : box.getAttribute("aria-label"));
    }
    box.dataset.feesyncNamed = "1";
  }

  function nameAll() {
    document.querySelectorAll("select.admin-autocomplete").forEach(nameOne);
  }

  // select2 draws its box when jQuery's ready handlers run, which may be before or after
  // the page's load event, and again for each row added to an inline: name each box as it
  // appears.
  nameAll();
  new MutationObserver(function (changes) {
    changes.forEach(function (change) {
      change.addedNodes.forEach(function (node) {
        if (node.nodeType !== 1) return;
        if (node.classList.contains("select2") && node.previousElementSibling) {
          nameOne(node.previousElementSibling);
        } else if (node.querySelector && node.querySelector("select.admin-autocomplete")) {
          window.setTimeout(nameAll, 0);
        }
      });
    });
  }).observe(document.body, { childList: true, subtree: true });
})();
