// Log in with a bearer token (from the tokens file, or a Kubernetes token).
import { useState, type FormEvent } from "react";
import { ApiError, get, useToken, type WhoAmI } from "../api/client";
import { ErrorBox } from "../ui/states";

export function LoginView({ onLogin, reason }: { onLogin: (token: string, who: WhoAmI) => void; reason?: string }) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError(new Error("Paste a token first"));
      return;
    }
    setBusy(true);
    setError(null);
    useToken(t);
    try {
      const who = await get("Checking the token", "/api/v1/whoami");
      onLogin(t, who);
    } catch (err) {
      useToken(null);
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Bulkhead</h1>
        <p>Sign in with an API token. It is kept in this tab only and sent as a bearer token to this controller.</p>
        {reason && <p className="notice">{reason}</p>}
        <label htmlFor="token">Token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          autoFocus
          value={token}
          onChange={(e) => setToken(e.target.value)}
          placeholder="bh_…"
        />
        <button type="submit" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        {error && <ErrorBox error={error instanceof ApiError && error.status === 401 ? new Error("This token was refused: check it and paste it again") : error} />}
      </form>
    </main>
  );
}
