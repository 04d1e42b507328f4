import type { Route } from '../model.js';

/** Segment matching by splitting: `*` is one non-empty segment, a final `**` any rest. */
export function pathMatches(pattern: string, path: string): boolean {
  if (!path.startsWith('/')) return false;
  const want = pattern === '/' ? [''] : pattern.slice(1).split('/');
  const have = path.slice(1).split('/');
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as string;
    if (w === '**') return true;
    const h = have[i];
    if (h === undefined) return false;
    if (w === '*' ? h === '' : h !== w) return false;
  }
  return have.length === want.length;
}

export function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return host === pattern;
}

export function routeMatches(route: Route, host: string, method: string, path: string): boolean {
  if (route.hosts.length > 0 && !route.hosts.some((h) => hostMatches(h, host))) return false;
  if (route.methods.length > 0 && !route.methods.includes(method)) return false;
  return route.paths.some((p) => pathMatches(p, path));
}
