// sales-supervisor console: keyboard shortcuts on the digest page and auto-submitting selects.
// No inline scripts anywhere (the Content-Security-Policy allows scripts from this origin only).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    var items = Array.prototype.slice.call(document.querySelectorAll("li.item"));
    if (!items.length) return;
    var current = -1;
    function select(i, noScroll) {
      if (!items.length) return;
      i = Math.max(0, Math.min(items.length - 1, i));
      if (current >= 0) items[current].classList.remove("selected");
      current = i;
      items[i].classList.add("selected");
      if (!noScroll) items[i].scrollIntoView({ block: "nearest" });
    }
    var hash = window.location.hash && document.querySelector(window.location.hash);
    var start = hash ? items.indexOf(hash) : -1;
    function pending(li) { return !li.classList.contains("decided"); }
    if (start >= 0 && !pending(items[start])) {
      // just decided: move on to the next item still waiting (after it, else the first one)
      var after = items.slice(start + 1).findIndex(pending);
      start = after >= 0 ? start + 1 + after : items.findIndex(pending);
      if (start < 0) start = items.indexOf(hash);
    }
    if (start < 0) start = items.findIndex(pending);
    select(start < 0 ? 0 : start, !hash);  // a fresh page opens at the top (the decide-first list)
    items.forEach(function (li, i) { li.addEventListener("click", function () { select(i, true); }); });
    document.addEventListener("keydown", function (ev) {
      var t = ev.target;
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
        if (ev.key === "Escape") t.blur();
        return;
      }
      var li = items[current];
      if (ev.key === "j") { select(current + 1); ev.preventDefault(); return; }
      if (ev.key === "k") { select(current - 1); ev.preventDefault(); return; }
      if (!li) return;
      var el = li.querySelector('[data-key="' + ev.key + '"]');
      if (ev.key === "o") { var a = li.querySelector('a[href^="/items/"]'); if (a) window.location = a.href; return; }
      if (!el) return;
      ev.preventDefault();
      if (ev.key === "d") { el.focus(); return; }
      if (ev.key === "e") { var d = el.closest("details"); d.open = true; var ta = d.querySelector("textarea"); ta.focus(); return; }
      el.click();
    });
  });
})();
