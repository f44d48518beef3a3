// The two sides of a suggestion's diff against the policy in force, for the
// side-by-side view. The API sends the diff as lines prefixed `+`, `-` or
// ` `, and nothing when no policy of that name is in force.

export interface Sides {
  before: string;
  after: string;
  added: number;
  removed: number;
}

export function sides(diff: string[], yaml: string): Sides {
  if (diff.length === 0) return { before: "", after: yaml, added: yaml.split("\n").filter(Boolean).length, removed: 0 };
  const before: string[] = [];
  const after: string[] = [];
  let added = 0;
  let removed = 0;
  for (const line of diff) {
    const mark = line[0];
    const text = line.slice(1);
    if (mark === "-") {
      before.push(text);
      removed++;
    } else if (mark === "+") {
      after.push(text);
      added++;
    } else {
      before.push(text);
      after.push(text);
    }
  }
  return { before: before.join("\n"), after: after.join("\n"), added, removed };
}
