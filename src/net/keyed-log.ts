// Log lines about strangers and misconfigured peers must not flood the log: each
// distinct key (e.g. subject + reason) is logged at most once per interval, and the next
// line for that key says how many were held back.
export interface WarnLogger {
  warn(fields: object, message: string): void;
}

export class KeyedRateLog {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly logger: WarnLogger | undefined,
    private readonly intervalMs: number,
    /** Keys remembered at most; the oldest are forgotten first. */
    private readonly maxKeys = 1024,
  ) {}

  warn(key: string, fields: object, message: string): void {
    if (this.logger === undefined) return;
    const now = performance.now();
    const seen = this.last.get(key);
    if (seen !== undefined && now - seen.at < this.intervalMs) {
      seen.held++;
      return;
    }
    const held = seen?.held ?? 0;
    this.last.delete(key);
    this.last.set(key, { at: now, held: 0 });
    if (this.last.size > this.maxKeys) this.last.delete(this.last.keys().next().value!);
    this.logger.warn(
      held > 0 ? { ...fields, suppressed: held } : fields,
      held > 0 ? `${message} (and ${held} more like it since the last line)` : message,
    );
  }
}
