/**
 * A table that scrolls sideways within itself when the screen is narrower than its
 * columns (a phone), instead of widening the page. A scrolling region takes focus so
 * keyboard users can scroll it (WCAG 2.1.1; axe scrollable-region-focusable).
 */
import type { ReactNode } from "react";

export function TableScroll({ label, children }: { label: string; children: ReactNode }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: see above
    <section aria-label={label} tabIndex={0} className="table-scroll">
      {children}
    </section>
  );
}
