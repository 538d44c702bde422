// Catalog: keep "Compare selected" honest (2 or 3 models). Filters apply with the Apply button, so that
// moving through a select with the keyboard never reloads the page under the user (WCAG 3.2.2).
(function () {
  "use strict";
  var form = document.getElementById("compare-form");
  var button = document.getElementById("compare-button");
  if (form && button) {
    var boxes = form.querySelectorAll('input[name="m"]');
    var update = function () {
      var n = form.querySelectorAll('input[name="m"]:checked').length;
      button.disabled = n < 2 || n > 3;
      button.textContent = n ? "Compare " + n + " selected (2–3)" : "Compare selected (2–3)";
    };
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    update();
  }
})();
