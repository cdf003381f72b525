/** Bytes peers got from the swarm vs from origins over time: the figure that says whether kiln is worth running. */
import { useState } from "react";
import { Card, Group, NativeSelect, SimpleGrid, Text } from "@mantine/core";
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { formatBytes } from "@common/format-bytes";
import { useTraffic } from "../lib/queries";
import { ErrorNote } from "./bits";

const WINDOWS = [
  { value: "60", label: "Last hour" },
  { value: "1440", label: "Last 24 hours" },
  { value: "10080", label: "Last 7 days" },
];
/** Dark enough for text contrast; the series are also stacked in a fixed order and named in the legend and tooltip, not told apart by colour alone. */
const SWARM = "#1e6e34";
const ORIGIN = "#a61e4d";

function Figure({ label, value, testId }: { label: string; value: string; testId: string }) {
  return (
    <div>
      <Text size="sm">{label}</Text>
      <Text size="xl" fw={700} data-testid={testId}>
        {value}
      </Text>
    </div>
  );
}

export function TrafficChart() {
  const [minutes, setMinutes] = useState("60");
  const traffic = useTraffic(Number(minutes));
  const t = traffic.data;
  const total = t ? t.swarm_bytes + t.origin_bytes : 0;
  const share = t && total > 0 ? Math.round((100 * t.swarm_bytes) / total) : 0;
  const time = (iso: string) => {
    const d = new Date(iso);
    return Number(minutes) > 1440 ? `${d.getMonth() + 1}/${d.getDate()} ${d.getHours()}h` : d.toTimeString().slice(0, 5);
  };
  const summary = t
    ? `${formatBytes(t.swarm_bytes)} from the swarm and ${formatBytes(t.origin_bytes)} from origins, ${WINDOWS.find((w) => w.value === minutes)?.label.toLowerCase()}`
    : "loading";
  return (
    <Card withBorder component="section" aria-label="Traffic from the swarm vs from origins">
      <Group justify="space-between" align="end">
        <Text fw={600}>Traffic: from the swarm vs from origins</Text>
        <NativeSelect label="Window" value={minutes} onChange={(e) => setMinutes(e.currentTarget.value)} data={WINDOWS} />
      </Group>
      <ErrorNote error={traffic.error} title="Could not load the traffic" />
      <SimpleGrid cols={{ base: 1, sm: 3 }} mt="sm">
        <Figure label="Origin traffic saved (served by peers)" value={t ? formatBytes(t.swarm_bytes) : "…"} testId="traffic-saved" />
        <Figure label="Fetched from origins" value={t ? formatBytes(t.origin_bytes) : "…"} testId="traffic-origin" />
        <Figure label="Share from the swarm" value={t ? `${share} %` : "…"} testId="traffic-share" />
      </SimpleGrid>
      <div role="img" aria-label={`Chart: ${summary}`} style={{ width: "100%", height: 240, marginTop: 12 }}>
        <ResponsiveContainer>
          <BarChart data={t?.points ?? []} margin={{ left: 16, right: 16 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="at" tickFormatter={time} minTickGap={32} />
            <YAxis tickFormatter={(v: number) => formatBytes(v)} width={80} />
            <Tooltip labelFormatter={(v) => new Date(String(v)).toLocaleString()} formatter={(v) => formatBytes(Number(v))} />
            <Legend />
            {/* Traffic comes in bursts: bars per bucket show them; no animation, so a screenshot shows what is there. */}
            <Bar dataKey="swarm_bytes" name="From the swarm" stackId="1" fill={SWARM} isAnimationActive={false} />
            <Bar dataKey="origin_bytes" name="From origins" stackId="1" fill={ORIGIN} isAnimationActive={false} />
          </BarChart>
        </ResponsiveContainer>
      </div>
    </Card>
  );
}
