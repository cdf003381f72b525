/**
 * The manager stopped answering: one clear banner, the time of the last answer (every
 * page keeps what it last showed), and a retry every few seconds; when the manager
 * answers again, every query is fetched afresh.
 */
import { Alert, Button, Text } from "@mantine/core";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useConnectivity } from "../lib/connectivity";
import { call } from "../lib/client";
import { ReadinessReply } from "@api/manager-paths";

const RETRY_MS = 3000;

const clock = (ms: number) => new Date(ms).toLocaleTimeString("en-GB", { hour12: false });

function useRetry(reachable: boolean) {
  const qc = useQueryClient();
  const [tries, setTries] = useState(0);
  useEffect(() => {
    if (reachable) return;
    const timer = setInterval(() => {
      setTries((n) => n + 1);
      // Any answer (even "not ready") marks the manager reachable again.
      void call(ReadinessReply, "/ready").catch(() => undefined);
    }, RETRY_MS);
    return () => clearInterval(timer);
  }, [reachable]);
  const [was, setWas] = useState(reachable);
  useEffect(() => {
    if (reachable && !was) void qc.invalidateQueries();
    setWas(reachable);
  }, [reachable, was, qc]);
  return tries;
}

export function UnreachableBanner() {
  const c = useConnectivity();
  const tries = useRetry(c.reachable);
  if (c.reachable) return null;
  return (
    <Alert color="red.9" variant="outline" role="alert" title="Manager unreachable, retrying" mb="md" data-testid="unreachable">
      <Text size="sm">
        The manager has not answered since {c.downSince ? clock(c.downSince) : "a moment ago"}. What this page shows is the last data it sent
        {c.lastAnswerAt ? ` (at ${clock(c.lastAnswerAt)})` : ""} and may be out of date. Asking again every {RETRY_MS / 1000} s
        {tries ? ` (${tries} tries so far)` : ""}.
      </Text>
      <Button mt="xs" size="xs" variant="default" onClick={() => void call(ReadinessReply, "/ready").catch(() => undefined)}>
        Try now
      </Button>
    </Alert>
  );
}

/** Before any answer (the first load failed): a page of its own instead of the sign-in form. */
export function UnreachableScreen({ onRetry }: { onRetry: () => void }) {
  useEffect(() => {
    const timer = setInterval(onRetry, RETRY_MS);
    return () => clearInterval(timer);
  }, [onRetry]);
  return (
    <Alert color="red.9" variant="outline" role="alert" title="Manager unreachable, retrying" m="md" data-testid="unreachable">
      The console could not reach the manager. It asks again every {RETRY_MS / 1000} s.
      <Button ml="xs" size="xs" variant="default" onClick={onRetry}>
        Try now
      </Button>
    </Alert>
  );
}
