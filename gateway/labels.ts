// A device's labels (key → value) and the selectors that pick groups of devices by them
// (ARCHITECTURE.md: groups are label selectors, `key=value` or `key`, several joined by commas). The
// gateway, the CLI and the dashboard (gateway/web/shared.ts) use these same rules.

export type Labels = { [key: string]: string };

export type Selector = { key: string; value?: string }[];

/** A label key: 1-63 characters A-Z a-z 0-9 . _ / - starting with a letter or digit. */
export const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

/** Parses a label selector: `key=value` or `key`, several joined by commas (all must match). */
export function parseSelector(text: string): Selector | string {
  const out: Selector = [];
  for (const part of text.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    const key = eq < 0 ? p : p.slice(0, eq);
    if (!LABEL_KEY.test(key)) return `label selector "${p.slice(0, 80)}" is not key or key=value`;
    out.push(eq < 0 ? { key } : { key, value: p.slice(eq + 1) });
  }
  return out;
}

/** Whether labels match every term of a selector (an empty selector matches everything). */
export function matchesSelector(labels: Labels | undefined, selector: Selector): boolean {
  return selector.every((s) => labels !== undefined && s.key in labels && (s.value === undefined || labels[s.key] === s.value));
}
