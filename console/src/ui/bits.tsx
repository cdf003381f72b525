/** Small pieces every page uses: state badges (word and symbol, not colour alone), a pager, times, errors. */
import { Alert, Badge, Button, Group, Stack, Text } from "@mantine/core";
import type { FormEvent, ReactNode } from "react";
import { ApiError } from "../lib/client";
import { sentence } from "../lib/field-message";

/** A green dark enough for white badge text (Mantine's green-9 is 4.4:1, short of 4.5). */
export const GREEN = "#1e6e34";

const JOB_STATE = {
  PENDING: { color: "blue.9", sign: "⋯", label: "Pending" },
  SUCCESS: { color: GREEN, sign: "✓", label: "Success" },
  FAILURE: { color: "red.9", sign: "✗", label: "Failure" },
} as const;

export function JobStateBadge({ state }: { state: keyof typeof JOB_STATE }) {
  const s = JOB_STATE[state];
  return (
    <Badge color={s.color} variant="filled" radius="sm" data-state={state}>
      <span aria-hidden="true">{s.sign} </span>
      {s.label}
    </Badge>
  );
}

export function UpDownBadge({ up, upLabel = "Active", downLabel = "Inactive" }: { up: boolean; upLabel?: string; downLabel?: string }) {
  return (
    <Badge color={up ? GREEN : "gray.7"} variant="filled" radius="sm">
      <span aria-hidden="true">{up ? "▲ " : "▼ "}</span>
      {up ? upLabel : downLabel}
    </Badge>
  );
}

/** `2024-04-18 08:51:55` in the reader's time zone, with the exact UTC time on hover. */
export function Time({ iso }: { iso: string }) {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  const local = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return (
    <time dateTime={iso} title={iso}>
      {local}
    </time>
  );
}

/** `12 s ago`, `3 min ago`: how fresh a keepalive is. */
export function Ago({ iso, now = Date.now() }: { iso: string; now?: number }) {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const text =
    s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : s < 86400 ? `${Math.floor(s / 3600)} h ago` : `${Math.floor(s / 86400)} d ago`;
  return (
    <time dateTime={iso} title={iso}>
      {text}
    </time>
  );
}

export function Pager({ page, lastPage, total, onPage, what }: { page: number; lastPage: number; total: number; onPage: (p: number) => void; what: string }) {
  return (
    <Group justify="space-between" mt="sm">
      <Text size="sm">
        {total} {what}
      </Text>
      <nav aria-label={`${what} pages`}>
        <Group gap="xs">
          <Button variant="default" size="xs" disabled={page <= 1} onClick={() => onPage(page - 1)}>
            Previous page
          </Button>
          <Text size="sm" aria-live="polite">
            Page {page} of {Math.max(1, lastPage)}
          </Text>
          <Button variant="default" size="xs" disabled={page >= lastPage} onClick={() => onPage(page + 1)}>
            Next page
          </Button>
        </Group>
      </nav>
    </Group>
  );
}

/** An error the API answered, shown as it said it (or what failed to load). */
export function ErrorNote({ error, title = "The manager refused" }: { error: unknown; title?: string }) {
  if (!error) return null;
  const fields = error instanceof ApiError ? Object.entries(error.fields) : [];
  const message = fields.length ? fields.map(([k, v]) => `${k}: ${sentence(v)}`).join(" ") : error instanceof Error ? error.message : String(error);
  const status = error instanceof ApiError && error.status ? ` (${error.status})` : "";
  return (
    <Alert color="red.9" title={`${title}${status}`} role="alert" variant="outline">
      {message}
    </Alert>
  );
}

export function PageTitle({ children, actions }: { children: ReactNode; actions?: ReactNode }) {
  return (
    <Group justify="space-between" mb="md">
      <h1 style={{ margin: 0, fontSize: "1.6rem" }}>{children}</h1>
      {actions}
    </Group>
  );
}

/**
 * A form whose fields stack. The browser's own validation is off: the manager's answer
 * says what is wrong, next to the field it names.
 */
export function Form({ onSubmit, maw, children, label }: { onSubmit: (e: FormEvent) => void; maw?: number; children: ReactNode; label?: string }) {
  return (
    <form onSubmit={onSubmit} noValidate style={maw ? { maxWidth: maw } : undefined} aria-label={label}>
      <Stack>{children}</Stack>
    </form>
  );
}
