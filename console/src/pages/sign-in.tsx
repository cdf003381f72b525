/** Sign in with a user name and password; the manager sets the session cookie. */
import { useState, type FormEvent } from "react";
import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, TextInput } from "@mantine/core";
import { MANAGER_PATHS } from "@api/manager-paths";
import { SignInReply } from "@api/users";
import { ApiError, call } from "../lib/client";

const LAST_USER = "kiln-console-last-user";

/** Remembered so the form offers the name of whoever signed in last in this browser (not always "root": typos would count against root's lockout). */
export function rememberUser(name: string): void {
  try {
    localStorage.setItem(LAST_USER, name);
  } catch {
    /* storage off: nothing to remember */
  }
}

function lastUser(): string {
  try {
    return localStorage.getItem(LAST_USER) ?? "";
  } catch {
    return "";
  }
}

export function SignIn({ notice, onSignedIn }: { notice?: string; onSignedIn: () => unknown }) {
  const [name, setName] = useState(lastUser);
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await call(SignInReply, MANAGER_PATHS.signin, { body: { name, password } });
      rememberUser(name);
      await onSignedIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? "Wrong user name or password." : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main>
      <Center mih="100vh">
        <Paper withBorder p="xl" w={380} component="form" onSubmit={submit} aria-labelledby="signin-title">
          <Stack>
            <h1 id="signin-title" style={{ margin: 0, fontSize: "1.5rem" }}>
              Sign in to kiln
            </h1>
            {notice && (
              <Alert color="blue.9" variant="outline" role="status">
                {notice}
              </Alert>
            )}
            <TextInput label="User name" name="name" autoComplete="username" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
            <PasswordInput
              label="Password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
              visibilityToggleButtonProps={{ "aria-label": "Show or hide the password" }}
            />
            {error && (
              <Text c="red.9" role="alert" size="sm">
                {error}
              </Text>
            )}
            <Button type="submit" loading={busy}>
              Sign in
            </Button>
            <Text size="xs">At first start the manager prints root's generated password once; you will be asked to change it.</Text>
          </Stack>
        </Paper>
      </Center>
    </main>
  );
}
