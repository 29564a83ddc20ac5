// The dashboard's only script (no inline scripts: the pages' CSP forbids them).
// 1. Times: every <time datetime="…Z"> is written in the viewer's time zone (the browser's);
//    its title keeps the UTC time, shown on hover.
// 2. Time fields (<input type="datetime-local" data-local-time>): the viewer types local
//    time; the form sends it as RFC 3339 in UTC, and a UTC value the page comes back with
//    is shown in local time again.
// 3. Reload the page every data-refresh seconds so it stays current on a wall screen or a
//    phone left open, but never while someone is typing into or has changed a form field:
//    a refresh must not throw away a half-written note at 3 a.m.
(function () {
  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }
  function zoneName(date) {
    try {
      var parts = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(date);
      for (var i = 0; i < parts.length; i++) {
        if (parts[i].type === "timeZoneName") {
          return parts[i].value;
        }
      }
    } catch (e) {}
    var offset = -date.getTimezoneOffset();
    var sign = offset < 0 ? "-" : "+";
    offset = Math.abs(offset);
    return "UTC" + sign + pad(Math.floor(offset / 60)) + ":" + pad(offset % 60);
  }
  function localText(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) +
      " " + zoneName(date);
  }
  function localField(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  var times = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < times.length; i++) {
    var date = new Date(times[i].getAttribute("datetime"));
    if (!isNaN(date.getTime())) {
      times[i].textContent = localText(date);
      times[i].classList.add("local");
    }
  }

  var fields = document.querySelectorAll("input[data-local-time]");
  for (var j = 0; j < fields.length; j++) {
    var value = fields[j].getAttribute("value") || "";
    if (/Z$|[+-]\d\d:\d\d$/.test(value)) {
      var shown = new Date(value);
      if (!isNaN(shown.getTime())) {
        fields[j].value = localField(shown);
        fields[j].defaultValue = fields[j].value;
      }
    }
  }
  var forms = document.querySelectorAll("form");
  for (var k = 0; k < forms.length; k++) {
    forms[k].addEventListener("submit", function (event) {
      var local = event.target.querySelectorAll("input[data-local-time]");
      for (var m = 0; m < local.length; m++) {
        var field = local[m];
        if (!field.value || !field.name) {
          continue;
        }
        var when = new Date(field.value);
        if (isNaN(when.getTime())) {
          continue;
        }
        var hidden = document.createElement("input");
        hidden.type = "hidden";
        hidden.name = field.name;
        hidden.value = when.toISOString().replace(/\.\d{3}Z$/, "Z");
        field.removeAttribute("name");
        event.target.appendChild(hidden);
      }
    });
  }

  var seconds = parseInt(document.body.getAttribute("data-refresh"), 10);
  if (!seconds) {
    return;
  }
  function busy() {
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    var typed = document.querySelectorAll("input[type=text], input[type=password], textarea");
    for (var n = 0; n < typed.length; n++) {
      if (typed[n].value !== typed[n].defaultValue) {
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
