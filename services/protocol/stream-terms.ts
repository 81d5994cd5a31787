/**
 * The words a stream, its history and its owners share: which tab policy
 * holds, why a replay may be incomplete, why a stream ends. Here, not in the
 * framing, so the ports can name them without depending on how frames look.
 */

/** `single`: one active tab per user, a new one takes over. `multi`: up to HERALD_MAX_TABS at once. */
export type TabPolicy = 'single' | 'multi';

/** Why a replay may be incomplete: the client must refetch its state (`event: gap`). */
export type GapReason = 'unknown_position' | 'history_trimmed' | 'replay_limit';

/**
 * Why a stream ends. `reclaim`: this tab lost its place to a newer tab that
 * then never opened (it left, or its node was draining): reconnect to take it
 * back. `resync`: the node may have missed events for it (its bus queue had to
 * be made again): reconnect, and the replay brings them. `max_age`: the
 * stream reached the node's cap on a stream's life (HERALD_MAX_STREAM_S):
 * reconnect, with the same token.
 */
export type CloseReason = 'draining' | 'token_expired' | 'replaced' | 'reclaim' | 'resync' | 'max_age' | 'slow_consumer' | 'client_closed' | 'server_error';
