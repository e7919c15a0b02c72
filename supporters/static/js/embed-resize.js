// On a page that frames the embeds (optional): size each frame marked data-supporters-embed
// to the height its embed reports. Messages are taken only from the embeds' own site.
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = script ? new URL(script.src).origin : null;
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !event.data) return;
    var height = event.data.supportersEmbedHeight;
    if (typeof height !== "number" || height <= 0 || height > 10000) return;
    var frames = document.querySelectorAll("iframe[data-supporters-embed]");
    for (var i = 0; i < frames.length; i++) {
      if (frames[i].contentWindow === event.source) {
        frames[i].style.height = height + "px";
        frames[i].setAttribute("height", String(height));
      }
    }
  });
})();
