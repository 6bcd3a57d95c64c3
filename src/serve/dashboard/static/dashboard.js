// Live updates of running operations: polls /operations/{id}/progress about once a second
// and updates the status badge (text and data-status), the progress bar, the counts and
// which buttons apply. The pages are complete without it.
(function () {
  "use strict";

  function setText(root, field, text) {
    root.querySelectorAll('[data-field="' + field + '"]').forEach(function (el) {
      el.textContent = text;
    });
  }

  function apply(root, data) {
    var badge = root.querySelector("[data-status]");
    if (badge) {
      badge.setAttribute("data-status", data.status);
      badge.className = "badge badge-" + data.status;
      badge.textContent = data.status_name;
    }
    var bar = root.querySelector("progress");
    if (bar) {
      if (data.determinate) {
        bar.max = data.max;
        bar.value = data.value;
      } else {
        bar.removeAttribute("value");
      }
      bar.setAttribute("aria-valuetext", data.text);
      bar.textContent = data.text;
    }
    setText(root, "text", data.text);
    setText(root, "percent", String(data.percent));
    setText(root, "rate_text", data.rate_text);
    setText(root, "eta_text", data.eta_text);
    setText(root, "succeeded", String(data.succeeded));
    setText(root, "failed", String(data.failed));
    setText(root, "skipped", String(data.skipped));
    setText(root, "selected", data.selected === null ? "not counted yet" : String(data.selected));
    setText(root, "cancel_requested", data.cancel_requested ? "yes" : "no");
    if (data.started) { setText(root, "started", data.started.text); }
    if (data.finished) { setText(root, "finished", data.finished.text); }
    root.querySelectorAll("[data-show-when]").forEach(function (el) {
      el.hidden = !data[el.getAttribute("data-show-when")];
    });
  }

  function poll(root) {
    var url = root.getAttribute("data-live-progress");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        apply(root, data);
        if (!data.final) {
          setTimeout(function () { poll(root); }, 1000);
        } else {
          var rendered = root.getAttribute("data-failed-rendered");
          // The failed records came in while the page was open: show them.
          if (rendered !== null && Number(rendered) !== data.failed) {
            window.location.reload();
          }
        }
      })
      .catch(function () {
        setTimeout(function () { poll(root); }, 5000);
      });
  }

  function start() {
    document.querySelectorAll("[data-live-progress]").forEach(function (root) {
      if (!root.hasAttribute("data-final")) { poll(root); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
