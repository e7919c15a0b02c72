// Ballots with several choices: once the limit is reached, the other boxes are disabled and a
// counter says how many are chosen. Without this script the server still enforces the limit.
(function () {
  "use strict";
  document.querySelectorAll("form[data-max-choices]").forEach(function (form) {
    var max = parseInt(form.getAttribute("data-max-choices"), 10);
    var boxes = form.querySelectorAll('input[type="checkbox"][name="option"]');
    var counter = form.querySelector("[data-choice-count]");
    if (!boxes.length || !(max > 0)) {
      return;
    }
    function update() {
      var chosen = 0;
      boxes.forEach(function (box) { if (box.checked) { chosen += 1; } });
      boxes.forEach(function (box) { box.disabled = !box.checked && chosen >= max; });
      if (counter) {
        counter.textContent = (counter.getAttribute("data-text") || "{chosen} / {max}")
          .replace("{chosen}", String(chosen))
          .replace("{max}", String(max));
        counter.hidden = false;
      }
    }
    boxes.forEach(function (box) { box.addEventListener("change", update); });
    update();
  });
})();
