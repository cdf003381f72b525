/**
 * Image acceleration (the seed's enable / get / create / delete / disable): layers
 * unpacked once on the shared directory, mounted by nodes' snapshotters. Shows the
 * seed's fields, the nodes that can mount, the accelerated images; root acts on them.
 */
import { useState, type FormEvent } from "react";
import { Badge, Button, Checkbox, Group, PasswordInput, SimpleGrid, Stack, Table, Text, TextInput } from "@mantine/core";
import { formatBytes } from "@common/format-bytes";
import { ApiError } from "../lib/client";
import { useAcceleration, useAccelerationSwitch, useCreateAccelerated, useDeleteAccelerated, useMe } from "../lib/queries";
import { ErrorNote, Form, GREEN, PageTitle } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";

/** One of the seed's flags: what it means in words, its field name as the API and Dragonfly's console spell it. */
function Flag({ label, field, on }: { label: string; field: string; on: boolean }) {
  return (
    <div>
      <Text size="sm">
        {label} <code>{field}</code>
      </Text>
      <Badge color={on ? GREEN : "red.9"} variant="filled" radius="sm" data-flag={field}>
        <span aria-hidden="true">{on ? "✓ " : "✗ "}</span>
        {on ? "yes" : "no"}
      </Badge>
    </div>
  );
}

function CreateForm() {
  const [original, setOriginal] = useState("");
  const [target, setTarget] = useState("");
  const [plainHttp, setPlainHttp] = useState(false);
  const [mirror, setMirror] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const create = useCreateAccelerated();
  const fields = create.error instanceof ApiError ? create.error.fields : {};
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({
      original: original.trim(),
      ...(target.trim() ? { target: target.trim() } : {}),
      plain_http: plainHttp,
      ...(mirror.trim() ? { mirror: mirror.trim() } : {}),
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
    });
  };
  return (
    <Form onSubmit={submit} maw={720} label="Accelerate an image">
      <Text fw={600}>Accelerate an image</Text>
      <TextInput
        label="Original image"
        placeholder="registry.example.com/team/app:v1"
        required
        value={original}
        onChange={(e) => setOriginal(e.currentTarget.value)}
        error={fields.original}
      />
      <TextInput
        label="Target image"
        description="default: the original's tag with -acc"
        value={target}
        onChange={(e) => setTarget(e.currentTarget.value)}
        error={fields.target}
      />
      <TextInput
        label="Fetch layers through a kiln peer"
        placeholder="http://127.0.0.1:4001"
        value={mirror}
        onChange={(e) => setMirror(e.currentTarget.value)}
        error={fields.mirror}
      />
      <Checkbox label="The registry speaks plain HTTP" checked={plainHttp} onChange={(e) => setPlainHttp(e.currentTarget.checked)} />
      <Group grow>
        <TextInput label="Registry username" autoComplete="off" value={username} onChange={(e) => setUsername(e.currentTarget.value)} />
        <PasswordInput
          label="Registry password"
          description="used for this create only"
          autoComplete="off"
          value={password}
          onChange={(e) => setPassword(e.currentTarget.value)}
        />
      </Group>
      {create.error && !Object.keys(fields).length && <ErrorNote error={create.error} />}
      <Group>
        <Button type="submit" loading={create.isPending}>
          Create target image
        </Button>
      </Group>
    </Form>
  );
}

export default function Accelerate() {
  const root = useMe().data?.role === "root";
  const view = useAcceleration();
  const toggle = useAccelerationSwitch();
  const remove = useDeleteAccelerated();
  const [force, setForce] = useState(false);
  const v = view.data;
  return (
    <Stack>
      <PageTitle
        actions={
          root && v ? (
            // Primary only when enabling can work: with the shared directory missing, the manager refuses it.
            <Button variant={v.Enable || !v.NfsReady ? "default" : "filled"} onClick={() => toggle.mutate({ on: !v.Enable, force })} loading={toggle.isPending}>
              {v.Enable ? "Disable acceleration" : "Enable acceleration"}
            </Button>
          ) : undefined
        }
      >
        Image acceleration
      </PageTitle>
      <Text size="sm">
        Layers unpacked once on the shared directory and mounted read-only by the nodes' snapshotters: a target image starts without downloading or unpacking
        them.
      </Text>
      <ErrorNote error={view.error ?? toggle.error ?? remove.error} />
      {v && (
        <>
          <SimpleGrid cols={{ base: 2, sm: 5 }}>
            <Flag label="Switched on" field="Enable" on={v.Enable} />
            <Flag label="Shared directory mounted and writable" field="NfsReady" on={v.NfsReady} />
            <Flag label="A node's snapshotter reported recently" field="AgentReady" on={v.AgentReady} />
            <div>
              <Text size="sm">Status</Text>
              <Text fw={700} data-testid="accelerate-status">
                {v.Status}
              </Text>
            </div>
            <div>
              <Text size="sm">Shared directory</Text>
              <code>{v.SharedDir}</code>
            </div>
          </SimpleGrid>
          {!v.NfsReady && (
            <Text size="sm" data-testid="accelerate-how">
              The shared directory <code>{v.SharedDir}</code> is not a mounted, writable filesystem here, so enabling is refused. Mount the same shared
              filesystem (NFS or similar) on the manager and on every node, and point kiln at it: <code>KILN_ACCELERATE_SHARED=/path</code> for the manager and
              the CLI, <code>kiln peer --accelerate-shared /path</code> and <code>kiln snapshotter --shared /path</code> on the nodes (default{" "}
              <code>/mnt/kiln-shared</code>).
            </Text>
          )}
          {v.Error && (
            <Text c="red.9" role="alert" data-testid="accelerate-error">
              {v.Error}
            </Text>
          )}
          <Text size="sm">Nodes that can mount accelerated images: {v.Nodes.join(", ") || "none (no snapshotter reported recently)"}</Text>
          <TableScroll label="Accelerated images table">
            <Table striped data-testid="accelerated-images">
              <Table.Caption>
                {v.Images.length ? "Accelerated images." : "No accelerated image (or none shown while one is created, deleted, or no node is up)."}
              </Table.Caption>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Original image</Table.Th>
                  <Table.Th>Target image</Table.Th>
                  <Table.Th>Size</Table.Th>
                  <Table.Th>Layers</Table.Th>
                  {root && <Table.Th>Delete</Table.Th>}
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {v.Images.map((i) => (
                  <Table.Tr key={i.OriginalImage}>
                    <Table.Td>{i.OriginalImage}</Table.Td>
                    <Table.Td>{i.TargetImage}</Table.Td>
                    <Table.Td>{formatBytes(i.Size)}</Table.Td>
                    <Table.Td>{i.Layers}</Table.Td>
                    {root && (
                      <Table.Td>
                        <Button
                          size="xs"
                          color="red.9"
                          variant="outline"
                          onClick={() => remove.mutate({ original: i.OriginalImage, force })}
                          loading={remove.isPending}
                        >
                          Delete {i.OriginalImage}
                        </Button>
                      </Table.Td>
                    )}
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </TableScroll>
          {root && (
            <Checkbox
              label="Force: delete or disable even while nodes still use the layers (their containers get I/O errors)"
              checked={force}
              onChange={(e) => setForce(e.currentTarget.checked)}
            />
          )}
          {root && v.Enable && <CreateForm />}
        </>
      )}
    </Stack>
  );
}
