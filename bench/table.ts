/** Tables as aligned plain text (for the terminal) and as markdown (for bench/results). */

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
  /** Right-aligned columns (numbers). */
  numeric?: boolean[];
  notes?: string[];
}

export function toText(t: Table): string {
  const widths = t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? "").length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (t.numeric?.[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const lines = [t.title, "=".repeat(t.title.length), fmt(t.headers), widths.map((w) => "-".repeat(w)).join("  ")];
  for (const r of t.rows) lines.push(fmt(r));
  for (const n of t.notes ?? []) lines.push(`  * ${n}`);
  return lines.join("\n");
}

export function toMarkdown(t: Table): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [
    `### ${t.title}`,
    "",
    `| ${t.headers.map(esc).join(" | ")} |`,
    `|${t.headers.map((_, i) => (t.numeric?.[i] ? " ---: " : " --- ")).join("|")}|`,
  ];
  for (const r of t.rows) lines.push(`| ${r.map(esc).join(" | ")} |`);
  if (t.notes?.length) {
    lines.push("");
    for (const n of t.notes) lines.push(`- ${n}`);
  }
  return lines.join("\n");
}
