/* The district layout's column picker and the live preview of the fee file
   (apps/vendors/kinds/fileexchange/widgets.py renders the markup).

   The text area of column names stays the field the form posts: this script hides it,
   shows the columns in the file (move up, move down, remove) and those still available
   (add) as plain buttons, and writes the chosen names back into it after every change, so
   the page saves the same way with or without JavaScript. As staff change the layout it
   posts the unsaved layout settings (never the secrets) to the preview address, at most
   one request at a time after a short pause, and shows the file's first lines. */
(function () {
  "use strict";
  var DEBOUNCE_MS = 300;

  function init(root) {
    if (root.dataset.feesyncReady) return;
    root.dataset.feesyncReady = "1";
    var text = root.querySelector("textarea");
    var form = text && text.form;
    if (!form) return;
    var columnsData = document.getElementById(text.id + "_columns");
    var columns = columnsData ? JSON.parse(columnsData.textContent) : [];
    var labels = {};
    columns.forEach(function (c) { labels[c.key] = c.label; });

    var picker = root.querySelector(".feesync-layout-picker");
    var chosenList = root.querySelector(".feesync-layout-chosen");
    var availableList = root.querySelector(".feesync-layout-available");
    var none = root.querySelector(".feesync-layout-none");
    var all = root.querySelector(".feesync-layout-all");
    var said = root.querySelector(".feesync-layout-said");
    var names = root.querySelector(".feesync-layout-names");
    var builtinNote = root.querySelector(".feesync-layout-builtin");
    var preview = root.querySelector(".feesync-layout-preview");
    var previewNote = root.querySelector(".feesync-layout-preview-note");
    var previewText = root.querySelector(".feesync-layout-preview-text");
    var previewUrl = root.dataset.previewUrl;
    var previewOptions = (root.dataset.previewOptions || "").split(/\s+/).filter(Boolean);

    // The label and help text the form rendered for the text area name the picker now.
    var label = form.querySelector('label[for="' + text.id + '"]');
    if (label) {
      label.id = label.id || text.id + "_label";
      picker.setAttribute("aria-labelledby", label.id);
    }
    var help = document.getElementById(text.id + "_helptext");
    if (help) picker.setAttribute("aria-describedby", help.id);

    function parse(value) {
      var seen = {};
      return value.split(/[\s,;]+/).map(function (k) { return k.trim().toLowerCase(); })
        .filter(function (k) {
          if (!k || seen[k]) return false;
          seen[k] = true;
          return true;
        });
    }
    var chosen = parse(text.value);

    function nameOf(key) {
      return labels[key] || key + " (unknown column)";
    }

    function button(textLabel, aria, action, key, disabled) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "button feesync-layout-" + action;
      b.textContent = textLabel;
      b.setAttribute("aria-label", aria);
      b.dataset.action = action;
      b.dataset.key = key;
      if (disabled) b.disabled = true;
      return b;
    }

    function draw() {
      chosenList.textContent = "";
      chosen.forEach(function (key, i) {
        var li = document.createElement("li");
        li.dataset.key = key;
        var name = document.createElement("span");
        name.className = "feesync-layout-name";
        var number = document.createElement("span");
        number.className = "feesync-layout-number";
        number.textContent = i + 1 + ".";
        name.appendChild(number);
        name.appendChild(document.createTextNode(" " + nameOf(key)));
        if (!labels[key]) li.classList.add("errors");
        var tools = document.createElement("span");
        tools.className = "feesync-layout-tools";
        tools.appendChild(button("Up", "Move " + nameOf(key) + " up", "up", key, i === 0));
        tools.appendChild(
          button("Down", "Move " + nameOf(key) + " down", "down", key, i === chosen.length - 1)
        );
        tools.appendChild(button("Remove", "Remove " + nameOf(key), "remove", key, false));
        li.appendChild(name);
        li.appendChild(tools);
        chosenList.appendChild(li);
      });
      none.hidden = chosen.length > 0;
      chosenList.hidden = chosen.length === 0;
      availableList.textContent = "";
      var left = columns.filter(function (c) { return chosen.indexOf(c.key) < 0; });
      left.forEach(function (c) {
        var li = document.createElement("li");
        li.dataset.key = c.key;
        var name = document.createElement("span");
        name.className = "feesync-layout-name";
        name.textContent = c.label;
        li.appendChild(name);
        li.appendChild(button("Add", "Add " + c.label, "add", c.key, false));
        availableList.appendChild(li);
      });
      all.hidden = left.length > 0;
      availableList.hidden = left.length === 0;
    }

    function focusOn(list, key, action) {
      var target = list.querySelector('button[data-key="' + key + '"][data-action="' + action + '"]');
      if (target && !target.disabled) { target.focus(); return true; }
      return false;
    }

    function store() {
      text.value = chosen.join(",");
      // unsaved.js (the "not saved yet" note) and the preview listen for this.
      text.dispatchEvent(new Event("input", { bubbles: true }));
    }

    picker.addEventListener("click", function (event) {
      var b = event.target.closest("button[data-action]");
      if (!b || !picker.contains(b)) return;
      var key = b.dataset.key;
      var i = chosen.indexOf(key);
      var action = b.dataset.action;
      var message = "";
      if (action === "add" && i < 0) {
        var next = b.closest("li").nextElementSibling || b.closest("li").previousElementSibling;
        var nextKey = next && next.dataset.key;
        chosen.push(key);
        message = nameOf(key) + " added as column " + chosen.length + " of " + chosen.length + ".";
        draw();
        // Stay in the list of available columns, so several can be added in a row.
        if (!(nextKey && focusOn(availableList, nextKey, "add"))) {
          focusOn(chosenList, key, "remove");
        }
      } else if (action === "remove" && i >= 0) {
        chosen.splice(i, 1);
        message = nameOf(key) + " removed; " + chosen.length + " column" +
          (chosen.length === 1 ? "" : "s") + " left.";
        draw();
        var after = chosen[i] || chosen[i - 1];
        if (!(after && focusOn(chosenList, after, "remove"))) focusOn(availableList, key, "add");
      } else if ((action === "up" && i > 0) || (action === "down" && i >= 0 && i < chosen.length - 1)) {
        var j = action === "up" ? i - 1 : i + 1;
        chosen.splice(i, 1);
        chosen.splice(j, 0, key);
        message = nameOf(key) + " moved to column " + (j + 1) + " of " + chosen.length + ".";
        draw();
        // Keep the focus on the same button of the moved column (or its other arrow at an end).
        if (!focusOn(chosenList, key, action)) focusOn(chosenList, key, action === "up" ? "down" : "up");
      } else {
        return;
      }
      said.textContent = message;
      store();
    });

    // --- which layout: the picker only matters for the district-defined one -------------
    var layoutField = form.elements.namedItem("layout");
    function showLayout() {
      var district = !layoutField || layoutField.value === "district";
      picker.hidden = !district;
      builtinNote.hidden = district;
    }

    // --- the live preview --------------------------------------------------------------
    var timer = null;
    var asked = 0;
    var controller = null;

    function say(note, isError) {
      previewNote.textContent = note;
      previewNote.classList.toggle("errornote", !!isError);
    }

    function payload() {
      var data = new FormData();
      var token = form.querySelector('input[name="csrfmiddlewaretoken"]');
      if (token) data.append("csrfmiddlewaretoken", token.value);
      previewOptions.forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (!field) return;
        if (field.type === "checkbox") {
          if (field.checked) data.append(name, field.value || "on");
        } else {
          data.append(name, field.value);
        }
      });
      return data;
    }

    function refresh() {
      if (!previewUrl) return;
      var mine = ++asked;
      if (controller) controller.abort();
      controller = window.AbortController ? new AbortController() : null;
      var data = payload();
      say("Redrawing the preview…", false);
      fetch(previewUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": data.get("csrfmiddlewaretoken") || "", Accept: "application/json" },
        signal: controller ? controller.signal : undefined,
      }).then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") < 0) {
          throw new Error(response.status === 403
            ? "You may not preview this integration's files."
            : "The preview could not be drawn (your session may have ended: reload the page).");
        }
        return response.json();
      }).then(function (answer) {
        if (mine !== asked) return;  // a newer change is being drawn
        if (!answer.ok) {
          var problems = Object.keys(answer.errors || {}).map(function (name) {
            var e = answer.errors[name];
            return e.label + ": " + e.message;
          });
          say("The preview cannot be drawn until this is fixed: " + problems.join(" "), true);
          return;
        }
        previewText.textContent = answer.text;
        var note = answer.fees
          ? "The file as the settings above would write it, with its first " +
            (answer.fees === 1 ? "fee" : answer.fees + " fees") + " in scope."
          : "No fees in scope yet: the file as the settings above would write it, without fees.";
        if (answer.byte_order_mark) note += " The file starts with a UTF-8 byte-order mark.";
        say(note + " Not saved until you save the connection settings.", false);
      }).catch(function (error) {
        if (error && error.name === "AbortError") return;
        if (mine !== asked) return;
        say(error && error.message ? error.message : "The preview could not be drawn.", true);
      });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DEBOUNCE_MS);
    }

    form.addEventListener("input", function (event) {
      if (event.target.name === "layout") showLayout();
      if (previewOptions.indexOf(event.target.name) >= 0) later();
    });
    form.addEventListener("change", function (event) {
      if (event.target.name === "layout") showLayout();
      if (previewOptions.indexOf(event.target.name) >= 0) later();
    });

    text.hidden = true;
    if (names) names.hidden = true;
    draw();
    showLayout();
    if (previewUrl) {
      preview.hidden = false;
      refresh();
    }
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-feesync-layout]"), init);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
