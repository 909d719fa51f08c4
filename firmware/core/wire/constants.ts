// The numbers of WIRE.md, named once: record kinds, grid signal ids and the channel table with its
// units. The core, the gateway, the console and the dashboard (served to the page as /wire.js by
// gateway/web/serve.ts) all take them from here.

/** Record kinds; the numbers are the WIRE.md uplink body types that carry them. */
export const RecordKind = { reading: 1, event: 2, gap: 7 } as const;

/** Names of the record kinds, as /metrics labels and the API speak them. */
export const RECORD_KIND_NAMES: { readonly [kind: number]: string } = { 1: 'reading', 2: 'event', 7: 'gap' };

/** Grid signal ids (WIRE.md "Signals", GUESTS.md `get_signal`/`on_signal`). */
export const Signal = {
  /** Price per kWh, in the currency's smallest unit per kWh. */
  price: 1,
  /** Demand-response level (0 none … 3 critical). */
  drLevel: 2,
  /** Import limit in W. */
  importLimit: 3,
} as const;

/**
 * WIRE.md "Channels (v1)": 1–12 from the first table, 13–22 added for DLMS meters (reactive energy and
 * power, per-phase active power).
 */
export const Channel = {
  energyImported: 1,
  energyExported: 2,
  powerImported: 3,
  powerExported: 4,
  voltageL1: 5,
  voltageL2: 6,
  voltageL3: 7,
  currentL1: 8,
  currentL2: 9,
  currentL3: 10,
  gas: 11,
  tariff: 12,
  reactiveEnergyImported: 13,
  reactiveEnergyExported: 14,
  reactivePowerImported: 15,
  reactivePowerExported: 16,
  powerImportedL1: 17,
  powerImportedL2: 18,
  powerImportedL3: 19,
  powerExportedL1: 20,
  powerExportedL2: 21,
  powerExportedL3: 22,
} as const;

/** The highest channel number defined. */
export const MAX_CHANNEL = 22;

/**
 * Each channel's key (the console's and CLI's name for it), its name for people and its WIRE.md unit,
 * indexed by channel number (index 0 is no channel).
 */
export const CHANNELS: readonly (readonly [key: string, name: string, unit: string])[] = [
  ['', '', ''],
  ['energy-imported', 'Energy imported', 'Wh'],
  ['energy-exported', 'Energy exported', 'Wh'],
  ['power-imported', 'Power imported', 'W'],
  ['power-exported', 'Power exported', 'W'],
  ['voltage-l1', 'Voltage L1', 'mV'],
  ['voltage-l2', 'Voltage L2', 'mV'],
  ['voltage-l3', 'Voltage L3', 'mV'],
  ['current-l1', 'Current L1', 'mA'],
  ['current-l2', 'Current L2', 'mA'],
  ['current-l3', 'Current L3', 'mA'],
  ['gas-delivered', 'Gas delivered', 'dm3'],
  ['tariff', 'Tariff indicator', ''],
  ['reactive-energy-imported', 'Reactive energy imported', 'varh'],
  ['reactive-energy-exported', 'Reactive energy exported', 'varh'],
  ['reactive-power-imported', 'Reactive power imported', 'var'],
  ['reactive-power-exported', 'Reactive power exported', 'var'],
  ['power-imported-l1', 'Power imported L1', 'W'],
  ['power-imported-l2', 'Power imported L2', 'W'],
  ['power-imported-l3', 'Power imported L3', 'W'],
  ['power-exported-l1', 'Power exported L1', 'W'],
  ['power-exported-l2', 'Power exported L2', 'W'],
  ['power-exported-l3', 'Power exported L3', 'W'],
];

/** A channel's key, `energy-imported`; `channel-N` for a number the table does not name. */
export function channelName(channel: number): string {
  return CHANNELS[channel]?.[0] || `channel-${channel}`;
}

/** A channel's WIRE.md unit (`Wh`, `mV`, `dm3`, …); '' when it has none or is unknown. */
export function channelUnit(channel: number): string {
  return CHANNELS[channel]?.[2] ?? '';
}
