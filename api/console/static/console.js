// console.js keeps the live parts of webhookd's console fresh. Every
// element with data-poll="<url>" is fetched again every data-interval ms
// and its contents replaced when the server's HTML changed; the element
// named by data-status says when it last succeeded. A 401 means the
// session ended: go to the sign-in form. Nothing else runs in the page,
// so the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";

  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-interval"), 10) || 2000;
    var status = document.getElementById(el.getAttribute("data-status") || "");
    var last = null;

    function say(text, ok) {
      if (status) {
        status.textContent = text;
        status.className = ok ? "live ok" : "live stale";
      }
    }

    function tick() {
      if (document.hidden) {
        setTimeout(tick, every);
        return;
      }
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (res) {
          if (res.status === 401) {
            window.location.assign("/console/");
            throw new Error("signed out");
          }
          if (!res.ok) {
            throw new Error("HTTP " + res.status);
          }
          return res.text();
        })
        .then(function (html) {
          if (html !== last) {
            el.innerHTML = html;
            last = html;
          }
          say("Live · updated " + new Date().toLocaleTimeString(), true);
        })
        .catch(function (err) {
          say("Not updating (" + err.message + "); retrying", false);
        })
        .finally(function () {
          setTimeout(tick, every);
        });
    }

    setTimeout(tick, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
})();
