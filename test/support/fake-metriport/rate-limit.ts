import type { RateLimitOperation } from './types.ts';

/** Metriport's default per-minute limits (facts §1.5). */
export const DEFAULT_RATE_LIMITS: Readonly<Record<RateLimitOperation, number>> = {
  patientCreateOrUpdate: 15,
  documentQuery: 20,
  consolidatedDataQuery: 120,
};

/** The text express-rate-limit answers with, per operation (MP `errorMessageByOperation`). */
export const RATE_LIMIT_MESSAGES: Readonly<Record<RateLimitOperation, string>> = {
  patientCreateOrUpdate: 'Too many patient creates or updates, please try again later.',
  documentQuery: 'Too many patient document query starts, please try again later.',
  consolidatedDataQuery: 'Too many patient consolidated data query starts, please try again later.',
};

/** The outcome of counting one request. */
export interface RateLimitVerdict {
  readonly allowed: boolean;
  /** The draft-6 `RateLimit-*` headers express-rate-limit sets (`standardHeaders: true`), plus `Retry-After` when refused. */
  readonly headers: Record<string, string>;
}

/**
 * Fixed-window counters, one per operation (one customer), like Metriport's express-rate-limit
 * store: every request counts, including those that then fail validation.
 */
export class RateLimiter {
  private readonly limits: Record<RateLimitOperation, number>;
  private readonly windowMs: number;
  private readonly windows = new Map<RateLimitOperation, { start: number; hits: number }>();

  constructor(limits: Partial<Record<RateLimitOperation, number>> | undefined, windowMs: number) {
    this.limits = { ...DEFAULT_RATE_LIMITS, ...limits };
    this.windowMs = windowMs;
  }

  /**
   * Counts a request.
   * @param operation - The operation.
   * @param refuseAll - Refuse whatever the count (the `rateLimitAll` fault).
   * @param now - Current time in ms.
   * @returns Whether it may proceed, and the headers to answer with.
   */
  hit(operation: RateLimitOperation, refuseAll = false, now = Date.now()): RateLimitVerdict {
    let window = this.windows.get(operation);
    if (!window || now >= window.start + this.windowMs) {
      window = { start: now, hits: 0 };
      this.windows.set(operation, window);
    }
    window.hits++;
    const limit = this.limits[operation];
    const resetSeconds = Math.max(1, Math.ceil((window.start + this.windowMs - now) / 1000));
    const allowed = !refuseAll && window.hits <= limit;
    const headers: Record<string, string> = {
      'ratelimit-policy': `${limit};w=${Math.ceil(this.windowMs / 1000)}`,
      'ratelimit-limit': String(limit),
      'ratelimit-remaining': String(Math.max(0, limit - window.hits)),
      'ratelimit-reset': String(resetSeconds),
    };
    if (!allowed) {
      headers['retry-after'] = String(resetSeconds);
    }
    return { allowed, headers };
  }
}
