export declare const SAME_PRESS_MS: number;
export declare function onStopPresses(onPress: (signal: 'SIGINT' | 'SIGTERM' | 'SIGHUP', presses: number) => void): void;
