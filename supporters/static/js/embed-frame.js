// Inside an embed: tell the page that frames it how tall it is, so that page's optional
// embed-resize.js can size the frame (now, on every change, and whenever it asks: it may
// start after the embed). Only a height leaves the frame.
(function () {
  "use strict";
  if (window.parent === window) return;
  var last = 0;
  function report(again) {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height === last && !again) return;
    last = height;
    window.parent.postMessage({ supportersEmbedHeight: height }, "*");
  }
  window.addEventListener("message", function (event) {
    if (event.source === window.parent && event.data && event.data.supportersEmbedAsk) report(true);
  });
  window.addEventListener("load", function () { report(false); });
  if (window.ResizeObserver) new ResizeObserver(function () { report(false); }).observe(document.documentElement);
  else window.addEventListener("resize", function () { report(false); });
})();
