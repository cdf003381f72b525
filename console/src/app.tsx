/** The session gate (sign in, forced password change) and, once signed in, the shell with every page. */
import { Suspense, useEffect, useRef, useState, type ReactNode } from "react";
import { Anchor, AppShell, Burger, Button, Center, Group, Loader, NavLink, Stack, Text } from "@mantine/core";
import { useQueryClient } from "@tanstack/react-query";
import { Link, Route, Switch, useLocation } from "wouter";
import type { UserView } from "@api/users";
import { isUnreachable, onUnauthorized } from "./lib/client";
import { lazyPage } from "./lib/lazy-page";
import { NotFound, PageErrorBoundary } from "./ui/page-error";
import { UnreachableBanner, UnreachableScreen } from "./ui/unreachable";
import { signOut, useMe } from "./lib/queries";
import { SignIn } from "./pages/sign-in";
import { ForcedPasswordChange } from "./pages/password";

const Overview = lazyPage(() => import("./pages/overview"));
const PreheatList = lazyPage(() => import("./pages/preheat-list"));
const PreheatCreate = lazyPage(() => import("./pages/preheat-create"));
const PreheatDetail = lazyPage(() => import("./pages/preheat-detail"));
const Clusters = lazyPage(() => import("./pages/clusters"));
const Members = lazyPage(() => import("./pages/members"));
const Peers = lazyPage(() => import("./pages/peers"));
const Tasks = lazyPage(() => import("./pages/tasks"));
const Pulls = lazyPage(() => import("./pages/puller-list"));
const PullDetail = lazyPage(() => import("./pages/puller-detail"));
const Accelerate = lazyPage(() => import("./pages/accelerate"));
const Tokens = lazyPage(() => import("./pages/tokens"));
const Users = lazyPage(() => import("./pages/users"));
const Account = lazyPage(() => import("./pages/account"));

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
  const [location] = useLocation();
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
  // Signed in and the manager stops answering: the pages stay, with the unreachable banner.
  if (!me.data && isUnreachable(me.error)) return <UnreachableScreen onRetry={() => void me.refetch()} />;
  if (!me.data || (me.isError && !isUnreachable(me.error))) return <SignIn notice={notice} onSignedIn={signedIn} />;
  if (me.data.must_change_password) {
    return <ForcedPasswordChange me={me.data} onChanged={() => signOut().finally(() => ended("Password changed. Sign in with your new password."))} />;
  }
  return (
    <Shell me={me.data} onSignOut={() => signOut().finally(() => ended("You signed out."))}>
      <PageErrorBoundary key={location}>
        <Suspense fallback={<Loader aria-label="Loading page" />}>
          <Switch>
            <Route path="/" component={Overview} />
            <Route path="/preheats" component={PreheatList} />
            <Route path="/preheats/new">{me.data.role === "root" ? <PreheatCreate /> : <RootOnly what="Adding a preheat" />}</Route>
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
            <Route component={NotFound} />
          </Switch>
        </Suspense>
      </PageErrorBoundary>
    </Shell>
  );
}

/** A page only root may use, opened by someone else: say so instead of showing a form the API would refuse. */
function RootOnly({ what }: { what: string }) {
  return (
    <Stack>
      <h1 style={{ margin: 0, fontSize: "1.6rem" }}>Not available to guests</h1>
      <Text>{what} needs the root role; ask a root user.</Text>
      <Anchor component={Link} href="/preheats">
        Back to the preheats
      </Anchor>
    </Stack>
  );
}

function Shell({ me, onSignOut, children }: { me: UserView; onSignOut: () => void; children: ReactNode }) {
  const [location, navigate] = useLocation();
  const [opened, setOpened] = useState(false);
  const active = (href: string) => (href === "/" ? location === "/" : location === href || location.startsWith(`${href}/`));
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 240, breakpoint: "sm", collapsed: { mobile: !opened } }} padding="md">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="xs" wrap="nowrap">
            <Burger
              opened={opened}
              onClick={() => setOpened((o) => !o)}
              hiddenFrom="sm"
              size="sm"
              aria-label={opened ? "Close the menu" : "Open the menu"}
              aria-expanded={opened}
              aria-controls="kiln-nav"
            />
            <Text fw={700} size="lg">
              kiln console
            </Text>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <Text size="sm" data-testid="whoami" visibleFrom="xs">
              {me.name} ({me.role})
            </Text>
            <Button variant="default" size="xs" onClick={onSignOut}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Pages" id="kiln-nav">
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
              setOpened(false);
              navigate(n.href);
            }}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main id="main" tabIndex={-1}>
        <UnreachableBanner />
        {children}
      </AppShell.Main>
    </AppShell>
  );
}
