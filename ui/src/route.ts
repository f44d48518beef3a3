// Every view is a URL: `#/VIEW?filters`. Links can be shared and bookmarked;
// the token is never part of one.

export const VIEWS = ["map", "flows", "exposure", "review", "quarantine", "trail", "blocks", "policies", "status", "audit"] as const;
export type View = (typeof VIEWS)[number];

export interface Route {
  view: View;
  params: URLSearchParams;
}

/** The route a location hash names (the map when it names none). */
export function parse(hash: string): Route {
  const h = hash.replace(/^#\/?/, "");
  const [path = "", query = ""] = h.split("?", 2);
  const view = (VIEWS as readonly string[]).includes(path) ? (path as View) : "map";
  return { view, params: new URLSearchParams(query) };
}

/** The hash for a view and its filters; empty values are left out. */
export function format(view: View, params: Record<string, string | undefined | null> | URLSearchParams = {}): string {
  const q = new URLSearchParams();
  const entries = params instanceof URLSearchParams ? [...params.entries()] : Object.entries(params);
  for (const [k, v] of entries) if (v) q.set(k, v);
  const s = q.toString();
  return `#/${view}${s ? `?${s}` : ""}`;
}

/** Goes to a view, adding to the history. */
export function go(view: View, params: Record<string, string | undefined | null> | URLSearchParams = {}): void {
  window.location.hash = format(view, params);
}

/** Sets or (with an empty value) removes some of a view's filters, in place. */
export function update(view: View, params: URLSearchParams, changes: Record<string, string | null>): void {
  const next = new URLSearchParams(params);
  for (const [k, v] of Object.entries(changes)) {
    if (v) next.set(k, v);
    else next.delete(k);
  }
  replace(view, next);
}

/** Replaces the current filters without a new history entry (typing in a filter box). */
export function replace(view: View, params: Record<string, string | undefined | null> | URLSearchParams): void {
  const target = format(view, params);
  if (window.location.hash !== target) {
    history.replaceState(null, "", target);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  }
}
