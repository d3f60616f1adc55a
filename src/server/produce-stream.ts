// One ProduceStream call: appends start as requests arrive (the log groups them into
// one write and one fsync), acknowledgements leave in request order, at most
// `maxInFlight` appends are started but unacknowledged before reading pauses, and the
// outgoing side honours flow control. No gRPC here: the handler adapts the call to a
// ProduceSink, so the session is tested with fakes.

/** The stream's two directions, as the session drives them. */
export interface ProduceSink {
  /** Sends one acknowledgement; false when the outgoing buffer is full. */
  write(offset: bigint): boolean;
  /** Resolves when the outgoing side can take more; rejects if `signal` aborts first. */
  drained(signal: AbortSignal): Promise<void>;
  /** Stops / restarts delivering requests (onData calls). */
  pause(): void;
  resume(): void;
  isPaused(): boolean;
}

export interface ProduceStreamSessionOptions {
  /** Appends one value; resolves with its offset. */
  append(value: Uint8Array): Promise<bigint>;
  /** Appends started but not yet acknowledged before reading pauses. */
  maxInFlight: number;
  /** Called once per acknowledgement sent (metrics). */
  acknowledged?(bytes: number): void;
}

type Outcome = { offset: bigint; bytes: number } | { error: unknown };

export class ProduceStreamSession {
  /** Outcomes of the started appends, in request order. */
  private readonly pending: Promise<Outcome>[] = [];
  private inputEnded = false;
  private stopReason: { reason: unknown } | undefined;
  private readonly cancelled = new AbortController();
  private wakeAcknowledger: (() => void) | undefined;

  constructor(
    private readonly sink: ProduceSink,
    private readonly options: ProduceStreamSessionOptions,
  ) {}

  /** A request arrived; its append starts now. Ignored once reading has stopped. */
  onData(value: Uint8Array): void {
    if (this.inputEnded) return;
    const bytes = value.byteLength;
    this.enqueue(
      this.options.append(value).then(
        (offset) => ({ offset, bytes }),
        (error: unknown) => ({ error }),
      ),
    );
  }

  /**
   * A request that cannot be appended: it fails the stream once every earlier request
   * is acknowledged, and nothing after it is read (refuse in order).
   */
  onInvalid(error: unknown): void {
    if (this.inputEnded) return;
    this.enqueue(Promise.resolve({ error }));
    this.endInput();
  }

  /** The client half-closed: acknowledge what is pending, then finish. */
  onEnd(): void {
    this.inputEnded = true;
    this.wake();
  }

  /** The client went away: stop now, acknowledge nothing more. */
  onCancel(): void {
    this.cancelled.abort();
    this.wake();
  }

  /**
   * Read no more requests, acknowledge the appends already started, then fail the
   * stream with `reason` (node shutdown).
   */
  stop(reason: unknown): void {
    this.stopReason ??= { reason };
    this.endInput();
  }

  /**
   * Sends the acknowledgements in request order. Resolves when input ended and every
   * append is acknowledged; rejects with the first failed append (or invalid request),
   * the cancellation, or the stop reason.
   */
  async acknowledge(): Promise<void> {
    const { sink, options } = this;
    const signal = this.cancelled.signal;
    for (;;) {
      signal.throwIfAborted();
      // Peek, not shift: the append being awaited still counts against maxInFlight.
      const next = this.pending[0];
      if (next === undefined) {
        if (this.inputEnded) break;
        await new Promise<void>((resolve) => (this.wakeAcknowledger = resolve));
        continue;
      }
      const outcome = await next;
      void this.pending.shift(); // settled: it is `next`, awaited above
      signal.throwIfAborted();
      if ('error' in outcome) throw outcome.error;
      const more = sink.write(outcome.offset);
      options.acknowledged?.(outcome.bytes);
      if (!more) await sink.drained(signal);
      if (sink.isPaused() && !this.inputEnded && this.pending.length < options.maxInFlight / 2) {
        sink.resume();
      }
    }
    if (this.stopReason) throw this.stopReason.reason;
  }

  private enqueue(outcome: Promise<Outcome>): void {
    this.pending.push(outcome);
    if (this.pending.length >= this.options.maxInFlight) this.sink.pause();
    this.wake();
  }

  private endInput(): void {
    this.sink.pause();
    this.inputEnded = true;
    this.wake();
  }

  private wake(): void {
    this.wakeAcknowledger?.();
    this.wakeAcknowledger = undefined;
  }
}
