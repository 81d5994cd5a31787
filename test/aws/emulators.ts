/** The emulators every AWS-shape test starts (scripts/fleet/emulators.ts, which `npm run cluster` starts too). */
export { startEmulators, type Emulators } from '../../scripts/fleet/emulators';

let counter = 0;

/** A name no other test in this process uses: lower-case, short enough for a queue prefix. */
export function unique(label: string): string {
  counter += 1;
  return `${label}-${process.pid.toString(36)}-${counter.toString(36)}`.toLowerCase().slice(0, 30);
}
