// The channel form follows its type: the base URL placeholder, the key's format, only the config fields the
// type reads, and the type's known models in the picker (providers/form_hints.py gives them per type).
(function () {
  "use strict";
  function setUp() {
    var type = document.getElementById("id_type");
    if (!type || !type.dataset.hints) return;
    var hints = JSON.parse(type.dataset.hints);
    var baseUrl = document.getElementById("id_base_url");
    var keyHint = document.getElementById("channel-key-format");
    var picker = document.getElementById("id_model_picker");
    var models = document.getElementById("id_models");

    function apply(firstTime) {
      var hint = hints[type.value];
      if (!hint) return;
      if (baseUrl) baseUrl.placeholder = hint.base_url;
      if (keyHint) keyHint.textContent = hint.key;
      document.querySelectorAll(".form-row[class*='field-config_']").forEach(function (row) {
        var name = (row.className.match(/field-config_(\S+)/) || [])[1];
        row.hidden = hint.config.indexOf(name) < 0;
      });
      if (picker && !firstTime) {
        picker.innerHTML = "";
        hint.models.forEach(function (model) { picker.add(new Option(model, model)); });
      }
    }
    type.addEventListener("change", function () { apply(false); });
    apply(true);

    var fill = document.getElementById("channel-models-fill");
    if (fill && picker && models) {
      fill.addEventListener("click", function (event) {
        event.preventDefault();
        var chosen = Array.from(picker.selectedOptions).map(function (o) { return o.value; });
        if (!chosen.length) chosen = Array.from(picker.options).map(function (o) { return o.value; });
        var current = models.value.split(",").map(function (m) { return m.trim(); }).filter(Boolean);
        chosen.forEach(function (m) { if (current.indexOf(m) < 0) current.push(m); });
        models.value = current.join(",");
        picker.selectedIndex = -1;
      });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
