// One stop request per Ctrl-C, for the scripts that run nodes in the
// foreground (`npm start`, `npm run cluster`).
//
// Under `npm run`, one Ctrl-C reaches the script twice within milliseconds:
// the terminal sends SIGINT to its whole foreground process group, and npm
// forwards the SIGINT it got to its child. Counted as two, the second would
// read as "pressed again, exit at once" and skip the drain. So copies that
// arrive within SAME_PRESS_MS of the one before are one press; a person
// pressing again takes longer than that. A signal sent to the pid alone (a
// process manager's SIGTERM, forwarded by npm) arrives once, and counts once.
// SIGHUP (the terminal closed) asks for a stop as SIGTERM does.
// Plain Node, standard library only.

export const SAME_PRESS_MS = 500;

/**
 * Calls `onPress(signal, presses)` for each distinct press of SIGINT, SIGTERM
 * or SIGHUP, with `presses` counting from 1. Replaces the default handling
 * (exiting) of those signals.
 */
export function onStopPresses(onPress) {
  let lastMs;
  let presses = 0;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      const now = process.hrtime.bigint() / 1_000_000n;
      const copy = lastMs !== undefined && now - lastMs < BigInt(SAME_PRESS_MS);
      lastMs = now;
      if (copy) return;
      presses++;
      onPress(signal, presses);
    });
  }
}
