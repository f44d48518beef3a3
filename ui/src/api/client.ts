// The typed API client. Paths, parameters and answers come from
// `schema.d.ts`, generated from the controller's OpenAPI document
// (`ui/openapi.json`, kept equal to the served one by a controller test), so
// a change of the API that the console does not follow fails `tsc`.
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Flow = Schemas["Flow"];
export type Peer = Schemas["Peer"];
export type Graph = Schemas["Graph"];
export type GraphNode = Schemas["GraphNode"];
export type GraphEdge = Schemas["GraphEdge"];
export type Pod = Schemas["Pod"];
export type Workload = Schemas["Workload"];
export type Quarantine = Schemas["Quarantine"];
export type Block = Schemas["Block"];
export type ReviewRecord = Schemas["ReviewRecord"];
export type ReviewDetail = Schemas["ReviewDetail"];
export type Status = Schemas["Status"];
export type WhoAmI = Schemas["WhoAmI"];
export type Role = Schemas["Role"];
export type Verdict = Schemas["Verdict"];
export type Anomaly = Schemas["Anomaly"];
export type AuditEntry = Schemas["AuditEntry"];
export type PolicyInForce = Schemas["PolicyInForce"];
export type Explanation = Schemas["Explanation"];
export type Allowed = Schemas["Allowed"];
export type Problem = Schemas["Problem"];

/** A failed call: what was asked, and the server's problem document when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly what: string,
    readonly status: number,
    readonly problem: Problem | null,
  ) {
    super(problem ? `${what}: ${problem.detail}` : `${what}: ${status ? `HTTP ${status}` : "the controller is unreachable"}`);
  }

  /** What the user can do about it. */
  get advice(): string {
    if (this.status === 0) return "Check that the controller is running and reachable, then retry.";
    if (this.status === 401) return "Your token was refused or has expired: log in again.";
    if (this.status === 403) return "Your role or namespaces do not allow this; ask an admin for a token that does.";
    if (this.status === 404) return "It may have been removed meanwhile; reload the view.";
    if (this.status >= 500) return "The controller failed to answer; retry, and look at its log if it persists.";
    return "Correct the request and retry.";
  }
}

type Get = { [P in keyof paths]: paths[P] extends { get: unknown } ? P : never }[keyof paths];
type Post = { [P in keyof paths]: paths[P] extends { post: unknown } ? P : never }[keyof paths];
type Delete = { [P in keyof paths]: paths[P] extends { delete: unknown } ? P : never }[keyof paths];
type Answer<Op> = Op extends { responses: { 200: { content: { "application/json": infer T } } } }
  ? T
  : Op extends { responses: { 201: { content: { "application/json": infer T } } } }
    ? T
    : never;
type Query<Op> = Op extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
type PathParams<Op> = Op extends { parameters: { path?: infer Q } } ? NonNullable<Q> : never;
type Body<Op> = Op extends { requestBody: { content: { "application/json": infer B } } } ? B : never;

type Params = Record<string, string | number | boolean | null | undefined>;

/** The bearer token, set at login; the only credential the console holds. */
let token: string | null = null;
let onUnauthorized: (() => void) | null = null;

/** Sets the token and what to do when the server refuses it. */
export function useToken(t: string | null, unauthorized?: () => void): void {
  token = t;
  onUnauthorized = unauthorized ?? null;
}

function url(path: string, pathParams: Params | undefined, query: Params | undefined): string {
  let p = path;
  for (const [k, v] of Object.entries(pathParams ?? {})) p = p.replace(`{${k}}`, encodeURIComponent(String(v)));
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `${p}?${s}` : p;
}

async function call<T>(
  what: string,
  method: string,
  target: string,
  body?: unknown,
  signal?: AbortSignal,
  accept = "application/json",
): Promise<T> {
  const headers: Record<string, string> = { Accept: accept };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r: Response;
  try {
    r = await fetch(target, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new ApiError(what, 0, null);
  }
  if (!r.ok) {
    let problem: Problem | null = null;
    try {
      problem = (await r.json()) as Problem;
    } catch {
      problem = null;
    }
    if (r.status === 401 && onUnauthorized) onUnauthorized();
    throw new ApiError(what, r.status, problem);
  }
  return (accept === "application/json" ? await r.json() : await r.text()) as T;
}

/** GET `path` with its typed query and path parameters. */
export function get<P extends Get>(
  what: string,
  path: P,
  query?: Query<paths[P]["get"]>,
  pathParams?: PathParams<paths[P]["get"]>,
  signal?: AbortSignal,
): Promise<Answer<paths[P]["get"]>> {
  return call(what, "GET", url(path, pathParams as Params, query as Params), undefined, signal);
}

/** GET `path` as text of type `accept` (the CSV exports), with the same errors as `get`. */
export function getText<P extends Get>(what: string, path: P, query: Query<paths[P]["get"]>, accept: string): Promise<string> {
  return call(what, "GET", url(path, undefined, query as Params), undefined, undefined, accept);
}

/** POST a typed body to `path`. */
export function post<P extends Post>(
  what: string,
  path: P,
  body: Body<paths[P]["post"]>,
  pathParams?: PathParams<paths[P]["post"]>,
): Promise<Answer<paths[P]["post"]>> {
  return call(what, "POST", url(path, pathParams as Params, undefined), body);
}

/** DELETE `path`. */
export function del<P extends Delete>(
  what: string,
  path: P,
  query?: Query<paths[P]["delete"]>,
  pathParams?: PathParams<paths[P]["delete"]>,
): Promise<Answer<paths[P]["delete"]>> {
  return call(what, "DELETE", url(path, pathParams as Params, query as Params));
}

/** The bearer header for calls the typed helpers cannot make (the flow stream). */
export function authHeader(): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export { url as buildUrl };
