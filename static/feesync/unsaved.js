/* The setup page saves each step on its own. So that saving one step (or leaving the
   page) never silently drops edits made in another, this keeps track of which steps have
   changes not saved yet, says so at the top of the page, and asks before they are lost.
   Without JavaScript the page still works; only the warning is missing. */
(function () {
  "use strict";
  var forms = Array.prototype.slice.call(document.querySelectorAll("form[data-feesync-step]"));
  if (!forms.length) return;
  var note = document.getElementById("unsaved-note");
  var submitting = false;

  function values(form) {
    var out = [];
    new FormData(form).forEach(function (value, key) {
      if (key !== "csrfmiddlewaretoken") out.push(key + "=" + value);
    });
    return out.sort().join("&");
  }
  var initial = new Map(forms.map(function (f) { return [f, values(f)]; }));

  function dirty(except) {
    return forms.filter(function (f) { return f !== except && values(f) !== initial.get(f); });
  }
  function names(list) {
    return list.map(function (f) { return "“" + f.dataset.feesyncStep + "”"; }).join(", ");
  }
  function show() {
    if (!note) return;
    var list = dirty(null);
    note.hidden = !list.length;
    note.querySelector("span").textContent = list.length
      ? "You have unsaved changes in " + names(list) + ". Save each step before leaving the page."
      : "";
  }
  document.addEventListener("input", show);
  document.addEventListener("change", show);

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var others = dirty(form);
    if (others.length) {
      var ok = window.confirm(
        "You have unsaved changes in " + names(others) + ". They will be lost if you go on. " +
        "Go on anyway?"
      );
      if (!ok) { event.preventDefault(); return; }
    }
    submitting = true;
  }, true);

  window.addEventListener("beforeunload", function (event) {
    if (submitting || !dirty(null).length) return;
    event.preventDefault();
    event.returnValue = "";  // the browser shows its own "leave the page?" question
  });
})();
