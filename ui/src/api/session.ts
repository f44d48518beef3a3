// Who the console acts for: the token (kept in this tab's sessionStorage,
// never in a cookie or on disk), and the role and namespaces the server
// reports. The console hides controls the role lacks; the server decides.
import type { Role, WhoAmI } from "./client";

const KEY = "bulkhead.token";
const RANK: Record<Role, number> = { viewer: 0, responder: 1, reviewer: 2, admin: 3 };

/** Whether `role` includes `needed` (roles include the ones below them). */
export function can(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** A tenant sees only its namespaces; a cluster-wide caller has none listed. */
export function scopeLabel(who: WhoAmI): string {
  return who.namespaces && who.namespaces.length ? `namespaces ${who.namespaces.join(", ")}` : "cluster-wide";
}

export function savedToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function saveToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // A browser that refuses storage keeps the token in memory only.
  }
}
