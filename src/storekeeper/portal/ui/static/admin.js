/* storekeeper web admin: confirm dialogs and live sync progress. Everything works without it, too. */
(function () {
  "use strict";

  // <form data-confirm="Delete service x?">: ask before submitting.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  // The one-time API token: select it all when focused, ready to copy.
  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  // A running sync job: poll /api/v1/jobs/{id} and show each store's result as it lands.
  var panel = document.querySelector("[data-job-url]");
  if (!panel) { return; }
  var FINISHED = { succeeded: true, failed: true };
  var BADGES = { queued: "muted", running: "info", succeeded: "ok", failed: "err" };
  if (FINISHED[panel.getAttribute("data-job-status")]) { return; }

  var url = panel.getAttribute("data-job-url");
  var tbody = panel.querySelector("[data-job-results]");
  var badge = panel.querySelector("[data-job-badge]");
  var live = panel.querySelector("[data-job-live]");
  var delay = 400;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function resultBadge(r) {
    if (!r.ok) { return el("span", "badge badge-err", "failed"); }
    if (r.action.indexOf("skipped") === 0) { return el("span", "badge badge-muted", "skipped"); }
    return el("span", "badge badge-ok", "ready");
  }

  function row(r) {
    var tr = el("tr");
    tr.setAttribute("data-store", r.store);
    var name = el("td"); name.appendChild(el("code", "", r.store)); tr.appendChild(name);
    var result = el("td"); result.appendChild(resultBadge(r)); tr.appendChild(result);
    tr.appendChild(el("td", "", r.action));
    tr.appendChild(el("td", "", r.first_time === null || r.first_time === undefined ? "—" : (r.first_time ? "yes" : "no")));
    tr.appendChild(el("td", "", (r.seconds || 0).toFixed(2) + " s"));
    var details = el("td");
    if (r.error) {
      details.appendChild(el("span", "text-err", r.error));
      if (r.hint) { details.appendChild(el("br")); details.appendChild(el("span", "muted", "Fix: " + r.hint)); }
    }
    tr.appendChild(details);
    return tr;
  }

  function show(job) {
    badge.textContent = job.status;
    badge.className = "badge badge-" + (BADGES[job.status] || "muted");
    panel.setAttribute("data-job-status", job.status);
    if (job.results.length) {
      tbody.replaceChildren.apply(tbody, job.results.map(row));
    }
    if (job.error) {
      var box = panel.querySelector("[data-job-error]");
      panel.querySelector("[data-job-error-message]").textContent = job.error;
      panel.querySelector("[data-job-error-hint]").textContent = job.hint ? "Fix: " + job.hint : "";
      box.hidden = false;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (job) {
        show(job);
        if (FINISHED[job.status]) {
          // Reload so the settings table shows the stores' new state.
          if (live) { live.textContent = "Finished; refreshing the page…"; }
          window.setTimeout(function () { window.location.reload(); }, 700);
          return;
        }
        delay = 400;
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 5000);
        if (live) { live.textContent = "Cannot reach the portal; retrying…"; }
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, delay);
})();
