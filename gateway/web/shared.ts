// What the dashboard shares with the CLI and the gateway: WIRE.md's numbers and the rules for device
// ids, pair codes, label selectors and pairing CSV files. serve.ts bundles this module for the page as
// /shared.js, so the page runs these same definitions rather than copies.

export { CHANNELS, RecordKind, Signal } from '../../firmware/core/wire/constants.js';
export { isDeviceId, normalizePairCode } from '../../firmware/core/wire/ids.js';
export { matchesSelector, parseSelector } from '../labels.js';
export { parsePairCsv } from './pair-csv.js';
