/**
 * Field errors as sentences in the field's own unit: the manager's validation answer
 * made readable (zod's stock wording rewritten, repeats dropped, bytes shown in MiB
 * under a field asked in MiB, seconds under one in seconds).
 */
const MiB = 1024 * 1024;

const STOCK: [RegExp, (m: RegExpExecArray) => string][] = [
  [/^Too small: expected string to have >=?(\d+) characters?$/, (m) => (m[1] === "1" ? "must not be empty" : `must be at least ${m[1]} characters`)],
  [/^Too big: expected string to have <=?(\d+) characters?$/, (m) => `must be at most ${m[1]} characters`],
  [/^Too small: expected number to be >=?(\S+)$/, (m) => `must be at least ${m[1]}`],
  [/^Too big: expected number to be <=?(\S+)$/, (m) => `must be at most ${m[1]}`],
  [/^Too small: expected array to have >=?(\d+) items?$/, (m) => `needs at least ${m[1]}`],
  [/^Invalid string: must match pattern .*$/, () => "is not in the expected form"],
  [/^Invalid option: expected one of (.*)$/, (m) => `must be one of ${m[1]!.replaceAll("|", ", ")}`],
  [/^Invalid input: expected (\w+), received (\w+)$/, (m) => `must be a ${m[1]}`],
  [/^Invalid input$/, () => "is not valid"],
];

export type FieldUnit = "MiB" | "seconds";

/** One message (or several joined by "; ") as one or more sentences. */
export function sentence(message: string, unit?: FieldUnit): string {
  const parts = [
    ...new Set(
      message
        .split(/;\s+/)
        .map((p) => p.trim())
        .filter(Boolean),
    ),
  ];
  return parts.map((p) => finish(inUnit(stock(p), unit))).join(" ");
}

function stock(part: string): string {
  for (const [re, say] of STOCK) {
    const m = re.exec(part);
    if (m) return say(m);
  }
  return part;
}

/** "at least 4194304 bytes (4 MiB)" → "at least 4 MiB" under a field in MiB. */
function inUnit(part: string, unit?: FieldUnit): string {
  if (unit !== "MiB") return part;
  return part.replace(/(\d+) bytes(?: \([^)]*\))?/g, (_, n: string) => `${+(Number(n) / MiB).toFixed(2)} MiB`);
}

function finish(part: string): string {
  const s = part.charAt(0).toUpperCase() + part.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}
