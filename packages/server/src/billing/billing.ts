/**
 * Stream billing (protocol.md §5), in integer arithmetic — never binary floats for money.
 */

/** Billing settings: price per minute per stream as a decimal string, rounding interval in s. */
export interface BillingSettings {
  /** e.g. `"0.003"`: at most 5 decimals. */
  ratePerMinute: string;
  /** Seconds, > 0 (60). */
  intervalSeconds: number;
}

/** The billing fields of a stream record. */
export interface StreamBill {
  /** Whole seconds: `ceil(end − first media sent)`, 0 if no media was sent. */
  billDuration: number;
  /** `ceil(billDuration / interval) × interval`. */
  roundedBillDuration: number;
  /** Exactly 5 decimals, e.g. `"0.00300"`. */
  billedAmount: string;
}

/**
 * Parses a decimal string into integer units of 10⁻⁵.
 * @throws Error for anything but a non-negative decimal with ≤ 5 fractional digits
 */
export function toHundredThousandths(decimal: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,5}))?$/.exec(decimal.trim());
  if (!m)
    throw new Error(`invalid rate "${decimal}": expected a non-negative decimal with at most 5 decimals`);
  return BigInt(m[1]!) * 100000n + BigInt((m[2] ?? '').padEnd(5, '0'));
}

/** Formats integer units of 10⁻⁵ as a decimal string with exactly 5 decimals. */
export function formatHundredThousandths(units: bigint): string {
  const whole = units / 100000n;
  const frac = (units % 100000n).toString().padStart(5, '0');
  return `${whole}.${frac}`;
}

/**
 * Bills one stream.
 * @param firstMediaMs epoch ms of the first `media` sent, or null if none
 * @param endMs epoch ms of the stream's end
 */
export function billStream(
  firstMediaMs: number | null,
  endMs: number,
  settings: BillingSettings,
): StreamBill {
  const billDuration = firstMediaMs === null ? 0 : Math.max(0, Math.ceil((endMs - firstMediaMs) / 1000));
  const interval = settings.intervalSeconds;
  const roundedBillDuration = Math.ceil(billDuration / interval) * interval;
  // amount = rate × rounded / 60, half-up at 10⁻⁵
  const numerator = toHundredThousandths(settings.ratePerMinute) * BigInt(roundedBillDuration);
  const units = (numerator * 2n + 60n) / 120n;
  return { billDuration, roundedBillDuration, billedAmount: formatHundredThousandths(units) };
}
