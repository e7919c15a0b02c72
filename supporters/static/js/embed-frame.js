// Inside an embed: tell the page that frames it how tall it is, so that page's optional
// embed-resize.js can size the frame. Only a height leaves the frame.
(function () {
  "use strict";
  if (window.parent === window) return;
  var last = 0;
  function report() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height === last) return;
    last = height;
    window.parent.postMessage({ supportersEmbedHeight: height }, "*");
  }
  window.addEventListener("load", report);
  if (window.ResizeObserver) new ResizeObserver(report).observe(document.documentElement);
  else window.addEventListener("resize", report);
})();
