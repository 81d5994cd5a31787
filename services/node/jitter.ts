/**
 * `centre` ± `spread`×`centre`, uniformly. Used for `retry:` so that clients
 * closed together do not come back together.
 */
export function jittered(centre: number, spread: number): number {
  return Math.max(0, Math.round(centre * (1 + spread * (2 * Math.random() - 1))));
}
