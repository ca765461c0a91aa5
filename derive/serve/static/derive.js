// The live preview: as the student types, the server reads the formula and returns MathML made from
// its parse tree (never from the typed text). Our own script, served by derive; no framework, no CDN.
(function () {
  "use strict";
  var form = document.getElementById("check-form");
  var preview = document.getElementById("preview");
  if (!form || !preview || !window.fetch) { return; }
  var timer = null, sent = 0;
  function request() {
    var data = {};
    ["formula", "syntax", "network", "kind", "wrt", "question"].forEach(function (name) {
      var field = form.elements[name];
      if (field && field.value !== "") { data[name] = field.value; }
    });
    return data;
  }
  function show(answer) {
    if (answer.ok) {
      preview.classList.remove("unread");
      preview.innerHTML = answer.mathml;  // MathML built by the server from names and numbers only
    } else {
      preview.classList.add("unread");
      preview.textContent = answer.message || "";
    }
  }
  function update() {
    var data = request(), mine = ++sent;
    if (!data.formula) { preview.textContent = ""; return; }
    fetch("/api/preview", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(data)})
      .then(function (r) { return r.json(); })
      .then(function (answer) { if (mine === sent) { show(answer); } })
      .catch(function () {});
  }
  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 250); });
})();
