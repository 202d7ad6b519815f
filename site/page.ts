/**
 * @file index.html's own script: registers the service worker that keeps the page usable offline.
 * (The element does not do this itself: a site embedding it decides about service workers.)
 */
if ("serviceWorker" in navigator && location.protocol !== "file:") {
  void navigator.serviceWorker.register("sw.js").catch(() => undefined);
}
