/** What a page that threw shows instead of a white screen: what happened, and ways on. */
import { Alert, Anchor, Button, Group, Stack } from "@mantine/core";
import { Component, type ReactNode } from "react";
import { Link } from "wouter";

export class PageErrorBoundary extends Component<{ children: ReactNode }, { error?: Error }> {
  state: { error?: Error } = {};

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  render() {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <Stack>
        <Alert color="red.9" variant="outline" role="alert" title="This page could not be shown">
          {error.message} If the console was just upgraded or the manager restarted, reloading fetches the current version.
        </Alert>
        <Group>
          <Button onClick={() => window.location.reload()}>Reload the console</Button>
          <Anchor component={Link} href="/" onClick={() => this.setState({ error: undefined })}>
            Back to the overview
          </Anchor>
        </Group>
      </Stack>
    );
  }
}

/** Unknown address: say so and offer the way back. */
export function NotFound() {
  return (
    <Stack>
      <h1 style={{ margin: 0, fontSize: "1.6rem" }}>There is no page here</h1>
      <Group>
        <Anchor component={Link} href="/">
          Back to the overview
        </Anchor>
        <Anchor component={Link} href="/preheats">
          Preheats
        </Anchor>
      </Group>
    </Stack>
  );
}
