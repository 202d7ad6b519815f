/** Types of serve.mjs (plain JavaScript so that `npm run site` needs no build step of its own). */
export function serveStatic(root: string, options?: { port?: number; onRequest?: (method: string, path: string) => void }): Promise<{ url: string; close: () => Promise<void> }>;
