/**
 * @file Offline use: the page's own files are cached on first load and served from the cache when the
 * network is gone (network first, so a new version is picked up when online). Nothing else is fetched.
 */
// The DOM and WebWorker type libraries cannot be combined: the few service-worker types used here.
interface ExtendableEvent extends Event { waitUntil(p: Promise<unknown>): void }
interface FetchEvent extends ExtendableEvent { request: Request; respondWith(r: Promise<Response>): void }
interface ServiceWorkerScope {
  location: Location;
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
  addEventListener(type: "install" | "activate", fn: (e: ExtendableEvent) => void): void;
  addEventListener(type: "fetch", fn: (e: FetchEvent) => void): void;
}
const scope = globalThis as unknown as ServiceWorkerScope;
const CACHE = "weightsoup-site-v1";
const FILES = ["./", "index.html", "embed.html", "page.css", "page.js", "embed-demo.js", "weightsoup-merge.js", "weightsoup-merge.css", "worker.js", "favicon.svg"];

scope.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => scope.skipWaiting()));
});
scope.addEventListener("activate", (e) => {
  e.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => scope.clients.claim()));
});
scope.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== scope.location.origin) return;
  e.respondWith(fetch(e.request).then((response) => {
    const copy = response.clone();
    if (response.ok) void caches.open(CACHE).then((c) => c.put(e.request, copy));
    return response;
  }).catch(async () => (await caches.match(e.request)) ?? Response.error()));
});
