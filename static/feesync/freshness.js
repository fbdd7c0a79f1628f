/* A page that updates itself when a background pull lands (apps/vendors/freshness.py).

   The page carries one watcher element:
     <div data-feesync-watch="/changed/url" data-since="1764590000.5" data-seconds="60"
          data-interval="2000" data-refresh="#a, .b" data-status="status-id"></div>
   For `data-seconds` it asks the URL every `data-interval` ms when the money last changed
   ({"changed_at": Unix time}). When that is later than the time the page was built from,
   it fetches the page again and swaps in the parts named by
   `data-refresh` (the fee rows, the balances), then says "Payments updated." in the
   status element (a polite live region, visible too). Without JavaScript the page says
   to reload it; nothing else changes. */
(function () {
  "use strict";
  var watcher = document.querySelector("[data-feesync-watch]");
  if (!watcher || !window.fetch || !window.DOMParser) return;
  var url = watcher.dataset.feesyncWatch;
  var since = parseFloat(watcher.dataset.since) || 0;
  var until = Date.now() + 1000 * (parseInt(watcher.dataset.seconds, 10) || 0);
  var every = Math.max(1000, parseInt(watcher.dataset.interval, 10) || 2000);
  var selectors = (watcher.dataset.refresh || "").split(",").map(function (s) { return s.trim(); })
    .filter(Boolean);
  var status = document.getElementById(watcher.dataset.status || "");
  var updated = false;

  function say(text) {
    if (!status) return;
    status.hidden = false;
    status.textContent = text;
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    selectors.forEach(function (selector) {
      var now = document.querySelectorAll(selector);
      var next = fresh.querySelectorAll(selector);
      for (var i = 0; i < now.length && i < next.length; i++) now[i].innerHTML = next[i].innerHTML;
    });
  }

  function refresh() {
    // The header tells the server not to ask the vendors again for this copy of the page.
    return fetch(window.location.href, {
      credentials: "same-origin",
      headers: { "X-FeeSync-Refresh": "payments" },
    }).then(function (response) {
      if (!response.ok) throw new Error("page " + response.status);
      return response.text();
    }).then(function (html) {
      swap(html);
      updated = true;
      say("Payments updated.");
    });
  }

  function tick() {
    if (Date.now() > until) {
      if (!updated) say("Finished checking: no new payments came in. Reload the page later to check again.");
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.changed_at && data.changed_at > since) {
          since = data.changed_at;
          return refresh();
        }
      })
      .catch(function () { /* a missed check is tried again on the next tick */ })
      .then(function () { window.setTimeout(tick, every); });
  }
  window.setTimeout(tick, every);
})();
