#!/usr/bin/env node
// The package's command. The TypeScript sources compile to dist/ (npm's `prepare`).

// Signals first, before anything is loaded. In a container Node is PID 1, and the kernel
// drops every signal PID 1 has no handler for: a SIGTERM that arrived while the CLI was
// loading or the agent was starting (opening its log, joining its cluster) would be
// ignored until the orchestrator lost patience and killed the process. Until the command
// installs a handler of its own, these end the process as the default action would
// (exit status 128 + the signal's number). Once it has one, they step aside: the agent's
// handler drains, leaves the cluster when --leave-on-terminate says so, and exits 0.
const EARLY_SIGNALS = { SIGINT: 2, SIGTERM: 15 };
for (const [signal, number] of Object.entries(EARLY_SIGNALS)) {
  process.on(signal, () => {
    if (process.listenerCount(signal) > 1) return; // the command's own handler acts
    process.stderr.write(`commitlog: ${signal} before the command was ready; exiting\n`);
    process.exit(128 + number);
  });
}

// `commitlog … | head` closes the pipe early: that is the reader's choice, not a failure
// worth a stack trace.
process.stdout.on('error', (err) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(process.exitCode ?? 0);
});

// Loaded only now, so the handlers above are in place while it loads.
const { main } = await import('../dist/src/cli/main.js');

main(process.argv).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    // Now, not when the event loop empties: a node that failed must not linger with a
    // client connection or a timer keeping it half alive (fail-stop).
    process.exit(1);
  },
);
