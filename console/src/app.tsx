/** The session gate (sign in, forced password change) and, once signed in, the shell with every page. */
import { lazy, Suspense, useEffect, useRef, useState, type ReactNode } from "react";
import { AppShell, Button, Center, Group, Loader, NavLink, Text } from "@mantine/core";
import { useQueryClient } from "@tanstack/react-query";
import { Route, Switch, useLocation } from "wouter";
import type { UserView } from "@api/manager";
import { onUnauthorized } from "./lib/client";
import { signOut, useMe } from "./lib/queries";
import { SignIn } from "./pages/sign-in";
import { ForcedPasswordChange } from "./pages/password";

const Overview = lazy(() => import("./pages/overview"));
const PreheatList = lazy(() => import("./pages/preheat-list"));
const PreheatCreate = lazy(() => import("./pages/preheat-create"));
const PreheatDetail = lazy(() => import("./pages/preheat-detail"));
const Clusters = lazy(() => import("./pages/clusters"));
const Members = lazy(() => import("./pages/members"));
const Peers = lazy(() => import("./pages/peers"));
const Tasks = lazy(() => import("./pages/tasks"));
const Pulls = lazy(() => import("./pages/pulls"));
const PullDetail = lazy(() => import("./pages/pull-detail"));
const Accelerate = lazy(() => import("./pages/accelerate"));
const Tokens = lazy(() => import("./pages/tokens"));
const Users = lazy(() => import("./pages/users"));
const Account = lazy(() => import("./pages/account"));

const NAV = [
  { href: "/", label: "Overview" },
  { href: "/preheats", label: "Preheats" },
  { href: "/clusters", label: "Clusters" },
  { href: "/members", label: "Schedulers and seed peers" },
  { href: "/peers", label: "Peers" },
  { href: "/tasks", label: "Tasks" },
  { href: "/pulls", label: "Pull schedules" },
  { href: "/accelerate", label: "Image acceleration" },
  { href: "/tokens", label: "Access tokens" },
  { href: "/users", label: "Users" },
  { href: "/account", label: "My account" },
];

export function App() {
  const me = useMe();
  const qc = useQueryClient();
  const [notice, setNotice] = useState<string>();
  const wasSignedIn = useRef(false);
  if (me.data && !me.isError) wasSignedIn.current = true;

  // A 401 while signed in means the session is over (expired, or ended elsewhere): back to the sign-in page.
  useEffect(
    () =>
      onUnauthorized(() => {
        if (!wasSignedIn.current) return;
        wasSignedIn.current = false;
        setNotice("Your session ended (it expired, or you were signed out elsewhere). Sign in again.");
        qc.removeQueries({ predicate: (q) => q.queryKey[0] !== "me" });
        void qc.invalidateQueries({ queryKey: ["me"] });
      }),
    [qc],
  );

  const signedIn = () => {
    setNotice(undefined);
    return qc.invalidateQueries({ queryKey: ["me"] });
  };
  const ended = (why: string) => {
    wasSignedIn.current = false;
    setNotice(why);
    qc.clear();
  };

  if (me.isPending) {
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  }
  if (me.isError || !me.data) return <SignIn notice={notice} onSignedIn={signedIn} />;
  if (me.data.must_change_password) {
    return <ForcedPasswordChange me={me.data} onChanged={() => signOut().finally(() => ended("Password changed. Sign in with your new password."))} />;
  }
  return (
    <Shell me={me.data} onSignOut={() => signOut().finally(() => ended("You signed out."))}>
      <Suspense fallback={<Loader aria-label="Loading page" />}>
        <Switch>
          <Route path="/" component={Overview} />
          <Route path="/preheats" component={PreheatList} />
          <Route path="/preheats/new" component={PreheatCreate} />
          <Route path="/preheats/:id">{(p) => <PreheatDetail id={Number(p.id)} />}</Route>
          <Route path="/clusters" component={Clusters} />
          <Route path="/members" component={Members} />
          <Route path="/peers" component={Peers} />
          <Route path="/tasks" component={Tasks} />
          <Route path="/pulls" component={Pulls} />
          <Route path="/pulls/:id">{(p) => <PullDetail id={Number(p.id)} />}</Route>
          <Route path="/accelerate" component={Accelerate} />
          <Route path="/tokens" component={Tokens} />
          <Route path="/users" component={Users} />
          <Route path="/account" component={Account} />
          <Route>
            <Text>There is no page here.</Text>
          </Route>
        </Switch>
      </Suspense>
    </Shell>
  );
}

function Shell({ me, onSignOut, children }: { me: UserView; onSignOut: () => void; children: ReactNode }) {
  const [location, navigate] = useLocation();
  const active = (href: string) => (href === "/" ? location === "/" : location === href || location.startsWith(`${href}/`));
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 240, breakpoint: "sm" }} padding="md">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between">
          <Text fw={700} size="lg">
            kiln console
          </Text>
          <Group gap="sm">
            <Text size="sm" data-testid="whoami">
              {me.name} ({me.role})
            </Text>
            <Button variant="default" size="xs" onClick={onSignOut}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Pages">
        {NAV.map((n) => (
          <NavLink
            key={n.href}
            component="a"
            href={n.href}
            label={n.label}
            active={active(n.href)}
            variant="filled"
            aria-current={active(n.href) ? "page" : undefined}
            onClick={(e) => {
              e.preventDefault();
              navigate(n.href);
            }}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main id="main" tabIndex={-1}>
        {children}
      </AppShell.Main>
    </AppShell>
  );
}
