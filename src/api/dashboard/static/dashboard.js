// Reload the page every data-refresh seconds so it stays current on a wall screen or a
// phone left open, but never while someone is typing into or has changed a form field:
// a refresh must not throw away a half-written note at 3 a.m.
(function () {
  var seconds = parseInt(document.body.getAttribute("data-refresh"), 10);
  if (!seconds) {
    return;
  }
  function busy() {
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    var fields = document.querySelectorAll("input[type=text], input[type=password], textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) {
        return true;
      }
    }
    return false;
  }
  setInterval(function () {
    if (!busy()) {
      location.reload();
    }
  }, seconds * 1000);
})();
