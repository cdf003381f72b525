/**
 * A table that scrolls sideways within itself when the screen is narrower than its
 * columns (a phone), instead of widening the page. A scrolling region takes focus so
 * keyboard users can scroll it (WCAG 2.1.1; axe scrollable-region-focusable).
 * Tables of up to three columns shrink to fit a phone (theme.css); `wide` marks one that
 * grows with its data (a column per node) and scrolls whatever its column count.
 */
import type { ReactNode } from "react";

export function TableScroll({ label, wide = false, children }: { label: string; wide?: boolean; children: ReactNode }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: see above
    <section aria-label={label} tabIndex={0} className="table-scroll" data-wide={wide || undefined}>
      {children}
    </section>
  );
}
