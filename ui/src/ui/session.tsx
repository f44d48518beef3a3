// The logged-in caller, for every view: what the server says it is.
import { createContext, useContext } from "react";
import type { Role, WhoAmI } from "../api/client";
import { can } from "../api/session";

export interface Session {
  who: WhoAmI;
  logout: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("no session");
  return s;
}

/** Whether the caller may block addresses: a responder with no tenant scope (a block reaches every namespace). */
export function useCanBlock(): boolean {
  const { who } = useSession();
  return can(who.role, "responder") && !who.namespaces;
}

/** Whether the caller's role includes `role`: controls it lacks are not drawn. */
export function useCan(role: Role): boolean {
  return can(useSession().who.role, role);
}
