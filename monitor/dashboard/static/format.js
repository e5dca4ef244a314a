// Formatting of on-chain facts: exact amounts from base units, times in UTC.

/** Format an integer amount in base units (string) with `decimals`, exactly (BigInt). */
export function formatAmount(amount, decimals) {
  let units;
  try {
    units = BigInt(amount);
  } catch {
    return String(amount);
  }
  if (decimals === undefined || decimals === null) return units.toLocaleString("en-US");
  const negative = units < 0n;
  if (negative) units = -units;
  const base = 10n ** BigInt(decimals);
  const whole = (units / base).toLocaleString("en-US");
  let fraction = (units % base).toString().padStart(Number(decimals), "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? "." + fraction : ""}`;
}

/** Amount with the asset's symbol, e.g. "1.5 ETH". */
export function amountText(amount, asset) {
  const symbol = asset && asset.symbol ? ` ${asset.symbol}` : asset && asset.address ? " tokens" : "";
  return formatAmount(amount, asset ? asset.decimals : undefined) + symbol;
}

/** Unix seconds (or ISO text) → "2026-11-03 14:05:09Z". */
export function utc(value) {
  if (value === undefined || value === null || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** Unix seconds → "3 min ago". */
export function ago(value) {
  const date = typeof value === "number" ? value * 1000 : Date.parse(value);
  if (!Number.isFinite(date)) return "";
  const seconds = Math.max(0, Math.round((Date.now() - date) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export const SEVERITIES = ["critical", "high", "medium", "low", "info"];
export const STATUSES = ["provisional", "confirmed", "retracted"];
export const DISPOSITIONS = ["open", "acknowledged", "resolved", "false_positive"];
