// A side panel with a title and a close button, as the map and the flows show one.
import type { ReactNode } from "react";

export function Panel({ title, onClose, children, testid }: { title: string; onClose: () => void; children: ReactNode; testid: string }) {
  return (
    <aside className="panel" aria-label={title} data-testid={testid}>
      <header>
        <h2>{title}</h2>
        <button type="button" className="ghost" onClick={onClose} aria-label="Close the panel">
          ✕
        </button>
      </header>
      {children}
    </aside>
  );
}
