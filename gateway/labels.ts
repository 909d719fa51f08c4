// A device's labels: key → value. Groups are label selectors, `key=value` or `key` (ARCHITECTURE.md).

export type Labels = { [key: string]: string };
