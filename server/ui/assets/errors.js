/* Loaded first: collects every script error, unhandled rejection and console.error or
 * console.warn of the page into <pre id="errors"> and the data-errors attribute of
 * <html>, so a headless browser's DOM dump shows them (tests/integration/test_ui.py). */
(function () {
  "use strict";
  var errors = [];
  window.seqdErrors = errors;
  function show() {
    document.documentElement.setAttribute("data-errors", String(errors.length));
    var el = document.getElementById("errors");
    if (el && errors.length) {
      el.hidden = false;
      el.textContent = errors.join("\n");
    }
  }
  function note(msg) {
    errors.push(String(msg));
    show();
  }
  window.addEventListener("error", function (e) {
    note("error: " + e.message + " at " + e.filename + ":" + e.lineno);
  });
  window.addEventListener("unhandledrejection", function (e) {
    var r = e.reason;
    note("unhandled rejection: " + (r && r.stack ? r.stack : r));
  });
  ["error", "warn"].forEach(function (level) {
    var orig = console[level];
    console[level] = function () {
      note("console." + level + ": " + Array.prototype.join.call(arguments, " "));
      orig.apply(console, arguments);
    };
  });
  document.addEventListener("DOMContentLoaded", show);
  show();
})();
