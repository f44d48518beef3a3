// The suggested YAML beside the policy in force, read-only, with changes
// marked (CodeMirror 6 merge view).
import { useEffect, useRef } from "react";
import { MergeView } from "@codemirror/merge";
import { EditorState } from "@codemirror/state";
import { EditorView, lineNumbers } from "@codemirror/view";
import { yaml } from "@codemirror/lang-yaml";

/** The page's CSP nonce, which the controller writes into each page it serves. */
function nonce(): string {
  return document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? "";
}

export function YamlDiff({ before, after }: { before: string; after: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const parent = box.current;
    if (!parent) return;
    const extensions = [lineNumbers(), yaml(), EditorState.readOnly.of(true), EditorView.editable.of(false), EditorView.cspNonce.of(nonce())];
    const view = new MergeView({
      a: { doc: before, extensions },
      b: { doc: after, extensions },
      parent,
      highlightChanges: true,
      gutter: true,
    });
    return () => view.destroy();
  }, [before, after]);
  return <div ref={box} className="yaml-diff" data-testid="yaml-diff" aria-label="The policy in force (left) and the suggestion (right)" />;
}
