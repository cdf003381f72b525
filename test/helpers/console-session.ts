/** A browser-like console session for API tests: the cookies sign-in sets, sent back as a browser would. */
import { api } from "./manager.js";

export interface CookieSession {
  /** The Set-Cookie lines of the sign-in answer. */
  setCookie: string[];
  /** `jwt=…; csrf_token=…`, as a browser sends them back. */
  cookie: string;
  /** The csrf_token cookie's value, for the X-CSRF-Token header. */
  csrf: string;
  /** The token of the JSON answer (the same as the jwt cookie). */
  token: string;
  expire: string;
}

export function cookieValue(setCookie: string[], name: string): string | undefined {
  const line = setCookie.find((l) => l.startsWith(`${name}=`));
  return line ? decodeURIComponent(line.slice(name.length + 1).split(";")[0]!) : undefined;
}

export async function cookieSignIn(managerUrl: string, name: string, password: string, headers: Record<string, string> = {}): Promise<CookieSession> {
  const r = await api(`${managerUrl}/api/v1/users/signin`, { body: { name, password }, headers });
  if (r.status !== 200) throw new Error(`sign-in as ${name}: ${r.status} ${JSON.stringify(r.json)}`);
  const setCookie = r.headers.getSetCookie();
  const jwt = cookieValue(setCookie, "jwt")!;
  const csrf = cookieValue(setCookie, "csrf_token")!;
  return { setCookie, cookie: `jwt=${encodeURIComponent(jwt)}; csrf_token=${encodeURIComponent(csrf)}`, csrf, token: r.json.token, expire: r.json.expire };
}

/** A call as the console page makes it: the cookies, and on writes the CSRF header. */
export function asBrowser(s: CookieSession, url: string, opts: { method?: string; body?: unknown; csrf?: string | null } = {}) {
  const method = opts.method ?? (opts.body === undefined ? "GET" : "POST");
  const headers: Record<string, string> = { cookie: s.cookie };
  const csrf = opts.csrf === undefined ? s.csrf : opts.csrf;
  if (method !== "GET" && csrf !== null) headers["x-csrf-token"] = csrf;
  return api(url, { method, body: opts.body, headers });
}
