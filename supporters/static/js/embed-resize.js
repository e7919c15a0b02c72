// On a page that frames the embeds (optional): size each frame marked data-supporters-embed
// to the height its embed reports. Messages are taken only from the embeds' own site.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var origin = new URL(script.src).origin;
  function frames() {
    return document.querySelectorAll("iframe[data-supporters-embed]");
  }
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !event.data) return;
    var height = event.data.supportersEmbedHeight;
    if (typeof height !== "number" || height <= 0 || height > 10000) return;
    var list = frames();
    for (var i = 0; i < list.length; i++) {
      if (list[i].contentWindow === event.source) {
        list[i].style.height = height + "px";
        list[i].setAttribute("height", String(height));
      }
    }
  });
  // Embeds that loaded before this script told nobody: ask them again (the question holds
  // nothing, so any window may read it, as a frame not loaded yet would).
  var list = frames();
  for (var i = 0; i < list.length; i++) {
    if (list[i].contentWindow) list[i].contentWindow.postMessage({ supportersEmbedAsk: true }, "*");
  }
})();
