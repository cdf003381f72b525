/**
 * containerd's filter syntax, as `List` (Walk) receives it: several filter strings
 * are OR-ed, the comma-separated selectors of one string AND-ed. A selector is a
 * field path (`name`, `parent`, `kind`, `labels.<key>`, with quoted parts such as
 * `labels."containerd.io/snapshot.ref"`), optionally followed by `==`, `!=` or `~=`
 * (regular expression) and a value, quoted or bare.
 */
import { KilnError } from "../common/errors.js";

type Operator = "present" | "==" | "!=" | "~=";
interface Selector {
  path: string[];
  op: Operator;
  value: string;
}
export type Filter = Selector[][];

export interface Filterable {
  name: string;
  parent: string;
  kind: string;
  labels: Record<string, string>;
}

class Scanner {
  private i = 0;
  constructor(private readonly s: string) {}
  get done(): boolean {
    this.skipSpace();
    return this.i >= this.s.length;
  }
  peek(n = 1): string {
    this.skipSpace();
    return this.s.slice(this.i, this.i + n);
  }
  take(n: number): string {
    const t = this.s.slice(this.i, this.i + n);
    this.i += n;
    return t;
  }
  private skipSpace(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }
  /** A quoted string ("…" with Go/JSON escapes, or /…/ for a regular expression), or a bare run of characters not in `stop`. */
  word(stop: RegExp): string {
    this.skipSpace();
    const q = this.s[this.i];
    if (q === '"' || q === "/" || q === "`") {
      let j = this.i + 1;
      while (j < this.s.length && this.s[j] !== q) j += this.s[j] === "\\" ? 2 : 1;
      if (j >= this.s.length) throw new KilnError("BAD_REQUEST", `unterminated quote in filter ${JSON.stringify(this.s)}`);
      const body = this.s.slice(this.i + 1, j);
      this.i = j + 1;
      if (q === '"') return JSON.parse(`"${body}"`) as string;
      return body.replaceAll(`\\${q}`, q);
    }
    const start = this.i;
    while (this.i < this.s.length && !stop.test(this.s[this.i]!)) this.i++;
    return this.s.slice(start, this.i);
  }
}

function parseOne(text: string): Selector[] {
  const sc = new Scanner(text);
  const selectors: Selector[] = [];
  while (!sc.done) {
    const path = [sc.word(/[.=!~,\s]/)];
    while (sc.peek() === ".") {
      sc.take(1);
      path.push(sc.word(/[.=!~,\s]/));
    }
    if (path.some((p) => p === "")) throw new KilnError("BAD_REQUEST", `empty field name in filter ${JSON.stringify(text)}`);
    const two = sc.peek(2);
    let op: Operator = "present";
    let value = "";
    if (two === "==" || two === "!=" || two === "~=") {
      sc.take(2);
      op = two;
      value = sc.word(/[,\s]/);
    }
    selectors.push({ path, op, value });
    if (sc.done) break;
    if (sc.peek() !== ",") throw new KilnError("BAD_REQUEST", `expected "," in filter ${JSON.stringify(text)}`);
    sc.take(1);
  }
  return selectors;
}

export function parseFilters(filters: string[]): Filter {
  return filters.filter((f) => f.trim() !== "").map(parseOne);
}

function field(item: Filterable, path: string[]): string | undefined {
  const [head, ...rest] = path;
  switch (head) {
    case "name":
      return item.name;
    case "parent":
      return item.parent;
    case "kind":
      return item.kind.toLowerCase();
    case "labels":
      return rest.length ? item.labels[rest.join(".")] : undefined;
    default:
      return undefined;
  }
}

function matchesSelector(item: Filterable, s: Selector): boolean {
  const v = field(item, s.path);
  switch (s.op) {
    case "present":
      return v !== undefined && v !== "";
    case "==":
      return v === s.value || (s.path[0] === "kind" && v === s.value.toLowerCase());
    case "!=":
      return v !== s.value;
    case "~=":
      return v !== undefined && new RegExp(s.value).test(v);
  }
}

/** No filter strings: everything matches. */
export function matches(item: Filterable, filter: Filter): boolean {
  if (!filter.length) return true;
  return filter.some((all) => all.every((s) => matchesSelector(item, s)));
}
