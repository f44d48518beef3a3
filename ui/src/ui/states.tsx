// Loading, empty and error states, the same on every view, and the hook
// that gives a view its data with them.
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { ApiError } from "../api/client";

export type Loaded<T> =
  | { state: "loading"; data?: T }
  | { state: "error"; error: ApiError | Error; data?: T }
  | { state: "ready"; data: T };

/** Loads `fetcher()` whenever `deps` change; `reload` fetches again, keeping the old data meanwhile. */
export function useApi<T>(fetcher: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Loaded<T> & { reload: () => void } {
  const [loaded, setLoaded] = useState<Loaded<T>>({ state: "loading" });
  const [tick, setTick] = useState(0);
  const latest = useRef(fetcher);
  latest.current = fetcher;
  useEffect(() => {
    const ctl = new AbortController();
    setLoaded((l) => ({ state: "loading", data: l.data }));
    latest
      .current(ctl.signal)
      .then((data) => !ctl.signal.aborted && setLoaded({ state: "ready", data }))
      .catch((error: unknown) => {
        if (ctl.signal.aborted) return;
        setLoaded((l) => ({ state: "error", error: error instanceof Error ? error : new Error(String(error)), data: l.data }));
      });
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...loaded, reload };
}

export function Loading({ what }: { what: string }) {
  return (
    <div className="state loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading {what}…
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

/** An error that names what failed and what to do. */
export function ErrorBox({ error, retry }: { error: ApiError | Error; retry?: () => void }) {
  const advice = error instanceof ApiError ? error.advice : "Retry; reload the page if it persists.";
  return (
    <div className="state error" role="alert">
      <strong>{error.message}</strong>
      <div>{advice}</div>
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** The usual three states around a loaded value. */
export function Show<T>({
  loaded,
  what,
  empty,
  isEmpty,
  children,
}: {
  loaded: Loaded<T> & { reload: () => void };
  what: string;
  empty?: ReactNode;
  isEmpty?: (t: T) => boolean;
  children: (t: T) => ReactNode;
}) {
  if (loaded.state === "error" && loaded.data === undefined) return <ErrorBox error={loaded.error} retry={loaded.reload} />;
  if (loaded.data === undefined) return <Loading what={what} />;
  return (
    <>
      {loaded.state === "error" && <ErrorBox error={loaded.error} retry={loaded.reload} />}
      {isEmpty?.(loaded.data) ? <Empty>{empty ?? `No ${what}.`}</Empty> : children(loaded.data)}
    </>
  );
}
