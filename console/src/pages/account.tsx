/** My account: who I am, and changing my own password (every user, guests included). */
import { useState } from "react";
import { Alert, Stack, Table, Text } from "@mantine/core";
import { useMe } from "../lib/queries";
import { GREEN, PageTitle } from "../ui/bits";
import { TableScroll } from "../ui/table-scroll";
import { ChangePasswordForm } from "./password";

export default function Account() {
  const me = useMe().data;
  const [done, setDone] = useState(false);
  if (!me) return null;
  return (
    <Stack>
      <PageTitle>My account</PageTitle>
      <TableScroll label="Account table">
        <Table withTableBorder maw={520} variant="vertical">
          <Table.Tbody>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Td>{me.name}</Table.Td>
            </Table.Tr>
            <Table.Tr>
              <Table.Th>Role</Table.Th>
              <Table.Td>{me.role === "root" ? "root (may change everything)" : "guest (read only)"}</Table.Td>
            </Table.Tr>
            <Table.Tr>
              <Table.Th>Email</Table.Th>
              <Table.Td>{me.email || "—"}</Table.Td>
            </Table.Tr>
          </Table.Tbody>
        </Table>
      </TableScroll>
      <h2 style={{ fontSize: "1.2rem", marginBottom: 0 }}>Change my password</h2>
      {done && (
        <Alert color={GREEN} variant="outline" role="status">
          <Text size="sm">Password changed. Your other sessions were signed out.</Text>
        </Alert>
      )}
      <ChangePasswordForm me={me} onChanged={() => setDone(true)} />
    </Stack>
  );
}
