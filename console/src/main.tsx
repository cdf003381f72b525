import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { MantineProvider, createTheme } from "@mantine/core";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import "@mantine/core/styles.css";
import "./theme.css";
import { App } from "./app";
import { ApiError } from "./lib/client";

// Shade 8 of every colour keeps white text and links at 4.5:1 contrast or better.
const theme = createTheme({ primaryColor: "blue", primaryShade: 8, focusRing: "auto", defaultRadius: "sm" });

const queries = new QueryClient({
  defaultOptions: {
    // A refusal (4xx) is an answer: asking again changes nothing.
    queries: { retry: (n, err) => !(err instanceof ApiError && err.status >= 400 && err.status < 500) && n < 2, refetchOnWindowFocus: true },
  },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <MantineProvider theme={theme} defaultColorScheme="light">
      <QueryClientProvider client={queries}>
        <App />
      </QueryClientProvider>
    </MantineProvider>
  </StrictMode>,
);
