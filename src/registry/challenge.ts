/** Parses `WWW-Authenticate` challenges (RFC 7235) as registries send them. */
export interface Challenge {
  /** Lower-cased: "bearer", "basic". */
  scheme: string;
  /** Lower-cased names: realm, service, scope, error… */
  params: Record<string, string>;
}

const SCHEME = /^\s*,?\s*([A-Za-z][\w!#$%&'*+.^`|~-]*)(?=\s|,|$)(?!\s*=)/;
const PARAM = /^\s*,?\s*([\w!#$%&'*+.^`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/;

/** `Bearer realm="https://auth",service="reg",scope="repository:a:pull"` → [{ scheme: "bearer", params }]. */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let rest = header;
  let current: Challenge | undefined;
  while (rest.trim().length) {
    const scheme = SCHEME.exec(rest);
    if (scheme) {
      current = { scheme: scheme[1]!.toLowerCase(), params: {} };
      out.push(current);
      rest = rest.slice(scheme[0].length);
      continue;
    }
    const param = PARAM.exec(rest);
    if (!param) break;
    if (current) current.params[param[1]!.toLowerCase()] = param[2] !== undefined ? param[2].replace(/\\(.)/g, "$1") : (param[3] ?? "");
    rest = rest.slice(param[0].length);
  }
  return out;
}
