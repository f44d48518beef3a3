// The shell: login, the session, navigation and the views.
import { useCallback, useEffect, useState } from "react";
import { useToken, type WhoAmI, get } from "./api/client";
import { saveToken, savedToken, scopeLabel } from "./api/session";
import { LoginView } from "./login/login-view";
import { parse, format, VIEWS, type Route, type View } from "./route";
import { SessionContext } from "./ui/session";
import { Loading } from "./ui/states";
import { MapView } from "./map/map-view";
import { FlowsView } from "./flows/flows-view";
import { ExposureView } from "./exposure/exposure-view";
import { ReviewView } from "./review/review-view";
import { QuarantineView } from "./quarantine/quarantine-view";
import { BlocksView } from "./blocks/blocks-view";
import { TrailView } from "./trail/trail-view";
import { PoliciesView } from "./policies/policies-view";
import { StatusView } from "./status/status-view";
import { AuditView } from "./audit/audit-view";

const LABELS: Record<View, string> = {
  map: "Map",
  flows: "Flows",
  exposure: "Exposure",
  review: "Review",
  quarantine: "Quarantine",
  trail: "Trail",
  blocks: "Blocks",
  policies: "Policies",
  status: "Status",
  audit: "Audit log",
};

function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(window.location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(window.location.hash));
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

function useTheme(): [string, () => void] {
  const [theme, setTheme] = useState(() => localStorage.getItem("bulkhead.theme") ?? "auto");
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("bulkhead.theme", theme);
  }, [theme]);
  const next = useCallback(() => setTheme((t) => (t === "auto" ? "dark" : t === "dark" ? "light" : "auto")), []);
  return [theme, next];
}

export function App() {
  const route = useRoute();
  const [theme, nextTheme] = useTheme();
  const [who, setWho] = useState<WhoAmI | null>(null);
  const [checking, setChecking] = useState(() => savedToken() !== null);
  const [reason, setReason] = useState<string | undefined>();

  const logout = useCallback((why?: string) => {
    saveToken(null);
    useToken(null);
    setWho(null);
    setReason(why);
  }, []);

  const login = useCallback(
    (token: string, w: WhoAmI) => {
      saveToken(token);
      useToken(token, () => logout("The controller refused your token (expired or revoked): sign in again."));
      setWho(w);
      setReason(undefined);
    },
    [logout],
  );

  // A reload keeps the tab's session: check the saved token once.
  useEffect(() => {
    const t = savedToken();
    if (!t) return;
    useToken(t);
    get("Checking the saved token", "/api/v1/whoami")
      .then((w) => login(t, w))
      .catch(() => logout("Your saved session is no longer valid: sign in again."))
      .finally(() => setChecking(false));
  }, [login, logout]);

  if (checking) return <Loading what="your session" />;
  if (!who) return <LoginView onLogin={login} reason={reason} />;

  return (
    <SessionContext.Provider value={{ who, logout: () => logout() }}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Bulkhead</span>
        <nav aria-label="Views">
          {VIEWS.map((v) => (
            <a key={v} href={format(v)} aria-current={route.view === v ? "page" : undefined}>
              {LABELS[v]}
            </a>
          ))}
        </nav>
        <span className="who" data-testid="who">
          {who.user} · <strong>{who.role}</strong> · {scopeLabel(who)}
        </span>
        <button type="button" className="ghost" onClick={nextTheme} title="Switch between automatic, dark and light">
          Theme: {theme}
        </button>
        <button type="button" className="ghost" onClick={() => logout()}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <CurrentView route={route} />
      </main>
    </SessionContext.Provider>
  );
}

function CurrentView({ route }: { route: Route }) {
  const p = route.params;
  switch (route.view) {
    case "map":
      return <MapView params={p} />;
    case "flows":
      return <FlowsView params={p} />;
    case "exposure":
      return <ExposureView params={p} />;
    case "review":
      return <ReviewView params={p} />;
    case "quarantine":
      return <QuarantineView params={p} />;
    case "trail":
      return <TrailView params={p} />;
    case "blocks":
      return <BlocksView params={p} />;
    case "policies":
      return <PoliciesView params={p} />;
    case "status":
      return <StatusView />;
    case "audit":
      return <AuditView params={p} />;
  }
}
