/** The emulators every AWS-shape test starts (see test/support/emulators.ts). */
export { startEmulators, unique, type Emulators } from '../support/emulators';
